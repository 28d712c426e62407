#include "textflag.h"

// func prefetchw(p unsafe.Pointer)
TEXT ·prefetchw(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ	p+0(FP), AX
	// PREFETCHW (AX), which the Go assembler does not know.
	BYTE	$0x0F; BYTE $0x0D; BYTE $0x08
	RET
