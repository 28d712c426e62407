package main

import (
	"testing"

	"github.com/surge-retail/surge/internal/redistest"
)

func redisAddr(t *testing.T) string { return redistest.Start(t).Addr }
