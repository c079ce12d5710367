package simulator

// RaceEnabled lets the external tests scale their fleets down under the
// race detector, which slows the server and the crypto about tenfold.
const RaceEnabled = raceEnabled
