// Package loadtest drives jinn with load and checks its promises. A run
// submits jobs (over HTTP or onto jinn.submit), each of which writes what it
// did to a sink outside jinn: its attempts, their workers and times, and
// whether another attempt of the same job held its lock at the same time.
// The verifier then compares the sink with jinn's final statuses and fails
// on any lost job or any two attempts of one job that overlapped in time.
package loadtest
