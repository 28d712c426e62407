// Package cputime reads the CPU time the process has used so far.
//
// Benchmarks and surge bench report it next to wall time: on a shared
// machine wall time also counts the time spent waiting for a core, which
// moves with the other tenants' load, while CPU time per operation moves
// far less. Where the platform has no getrusage (anything but unix), Process
// reports ok=false and callers leave the figure out.
package cputime
