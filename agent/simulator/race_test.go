//go:build race

package simulator

// raceEnabled scales load tests down: the race detector slows the crypto
// and HTTP paths about tenfold.
const raceEnabled = true
