// Package cputime reads CPU time: the process's own so far, another
// process's, and the whole machine's.
//
// Benchmarks and surge bench report it next to wall time: on a shared
// machine wall time also counts the time spent waiting for a core, which
// moves with the other tenants' load, while CPU time per operation moves
// far less. Where the platform has no getrusage (anything but unix), Process
// reports ok=false and callers leave the figure out; PID and Machine read
// Linux's /proc and report ok=false elsewhere.
package cputime
