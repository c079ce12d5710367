package plan

import (
	"math"
	"time"
)

// Link is what the estimate needs to know about one link class. The
// defaults (DefaultLinks) describe typical hardware in good coverage; pass
// figures measured on your own fleet where you have them.
type Link struct {
	Name string
	// DownBitsPerSecond is the raw downlink rate while the device is
	// receiving (for LoRa: the PHY bit rate while a frame is on air).
	DownBitsPerSecond float64
	// Efficiency is the share of the raw rate that carries image bytes once
	// protocol headers and framing are paid (0 < Efficiency <= 1).
	Efficiency float64
	// Loss is the share of transmissions lost and sent again (0 <= Loss < 1).
	Loss float64
	// RTT is one request/response round trip between device and server.
	RTT time.Duration
	// SetupTime is spent once per download before the first image byte
	// (connection and security handshakes), with the radio on.
	SetupTime time.Duration
	// ChunkBytes is the image bytes fetched per request, each costing an
	// RTT; 0 fetches the whole image in one request.
	ChunkBytes int64
	// DutyCycle is the share of time the link may carry this device's
	// frames (regulatory airtime limit); 0 means unlimited.
	DutyCycle float64
	// ListenContinuously means the receiver stays on for the whole download
	// session, including the silent time the duty cycle forces (LoRaWAN
	// Class C); otherwise the radio is on only while transferring and
	// waiting on round trips.
	ListenContinuously bool
	// ActiveWatts is the device's power draw while its radio is on.
	ActiveWatts float64
	// Wakeable reports whether the server can wake the device at once (MQTT
	// on a held connection) for immediate rollouts.
	Wakeable bool
	// BatteryWh is the capacity assumed for a battery device on this link
	// that reports none; 0 means DefaultBatteryWh.
	BatteryWh float64
	// Source says where the figures come from.
	Source string
}

// Goodput is the image bit rate while the link is transferring:
// raw rate × efficiency × (1 − loss).
func (l Link) Goodput() float64 { return l.DownBitsPerSecond * l.Efficiency * (1 - l.Loss) }

// DefaultBatteryWh is the battery capacity 3GPP assumes for a cellular IoT
// device in its battery-life evaluations (3GPP TR 45.820 §5.4: "5 Wh",
// as summarised in M. Sauter, From GSM to LTE-Advanced Pro and 5G, §4.19).
const DefaultBatteryWh = 5.0

// Protocol overheads that the IP links share.
const (
	// TCP/IPv4 with the timestamp option in a 1500-byte MTU carries 1448
	// payload bytes (RFC 791: 20-byte header, RFC 9293: 20-byte header,
	// RFC 7323: 12 bytes of timestamps).
	tcpPayload = 1448.0
	ipMTU      = 1500.0
	// An Ethernet frame adds 14 bytes of header and 4 of FCS, and occupies
	// 8 bytes of preamble/SFD and 12 of inter-packet gap on the wire (IEEE
	// 802.3 clause 3 and 4).
	ethernetWire = ipMTU + 14 + 4 + 8 + 12
	// A full TLS 1.3 record carries 16384 bytes for 5 bytes of header, 1 of
	// content type and a 16-byte AEAD tag (RFC 8446 §5.2).
	tlsRecordEfficiency = 16384.0 / (16384 + 5 + 1 + 16)
	// TCP and TLS 1.3 handshakes take one round trip each before the
	// request (RFC 9293 §3.5, RFC 8446 §2); the request itself is counted
	// per chunk.
	handshakeRTTs = 2
	// LTE link adaptation picks the coding for a transport block error
	// rate of at most 10% (3GPP TS 36.213 §7.2.3, CQI definition); HARQ
	// resends those blocks.
	lteBLER = 0.1
)

// LoRa downlink framing for firmware updates in EU868 at DR5.
const (
	// DR5 is SF7 at 125 kHz, 5470 bit/s (LoRaWAN Regional Parameters
	// RP002, EU863-870 data-rate table; The Things Network, "EU863-870 MHz
	// Band").
	loraDR5BitsPerSecond = 5470
	loraDR5SF            = 7
	loraBandwidthHz      = 125000
	// Largest application payload at DR5 is 222 bytes (RP002 EU863-870
	// maximum payload table, N for DR5); the PHY payload adds MHDR 1, FHDR
	// 7, FPort 1 and MIC 4 bytes (LoRaWAN L2 1.0.4 §4).
	loraMaxAppPayload = 222
	loraMACOverhead   = 1 + 7 + 1 + 4
	// Each fragment of the Fragmented Data Block Transport package (LoRa
	// Alliance TS004) spends 1 byte of command id and 2 of fragment index.
	loraFragmentHeader = 3
	// ETSI EN 300 220-2 sub-band M (868.0-868.6 MHz, the default LoRaWAN
	// channels) allows a 1% duty cycle.
	loraDutyCycle = 0.01
	// RECEIVE_DELAY1 is 1 s in LoRaWAN's default settings (RP002).
	loraReceiveDelay = time.Second
)

// LoRaAirtime is the time on air of one LoRa frame with payloadBytes of PHY
// payload, from the formula in the Semtech SX1276 datasheet §4.1.1.7 (also
// AN1200.13): symbol time 2^SF/BW, 8 preamble symbols plus 4.25, and
// 8 + max(ceil((8PL − 4SF + 28 + 16CRC − 20IH) / (4(SF − 2DE))) × (CR+4), 0)
// payload symbols. codingRate is 1..4 for 4/5..4/8.
func LoRaAirtime(payloadBytes, sf int, bandwidthHz float64, codingRate int, crc, explicitHeader, lowDataRateOpt bool) time.Duration {
	tsym := math.Exp2(float64(sf)) / bandwidthHz
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	num := 8*float64(payloadBytes) - 4*float64(sf) + 28 + 16*b(crc) - 20*(1-b(explicitHeader))
	den := 4 * (float64(sf) - 2*b(lowDataRateOpt))
	payloadSymbols := 8 + math.Max(math.Ceil(num/den)*float64(codingRate+4), 0)
	return time.Duration(math.Round((8 + 4.25 + payloadSymbols) * tsym * float64(time.Second)))
}

// DefaultLinks returns the built-in link table, keyed by link name:
// ethernet, wifi, cellular (LTE-M, also as "lte-m"), nb-iot and lora. Each
// figure's source is in the comment beside it; the map is a fresh copy.
func DefaultLinks() map[string]Link {
	// LoRa: a DR5 downlink frame carries 219 image bytes in 368.9 ms on
	// air (235-byte PHY payload, CR 4/5, explicit header, no CRC on
	// downlinks per LoRaWAN L2 §4, no low-data-rate optimisation at SF7).
	loraFrame := LoRaAirtime(loraMaxAppPayload+loraMACOverhead, loraDR5SF, loraBandwidthHz, 1, false, true, false)
	loraEff := float64((loraMaxAppPayload-loraFragmentHeader)*8) / loraFrame.Seconds() / loraDR5BitsPerSecond

	ipEff := tcpPayload / ipMTU * tlsRecordEfficiency

	lteM := Link{
		Name: "cellular",
		// LTE Cat-M1 in half-duplex FDD, as most IoT modems run it: 300
		// kbit/s downlink after scheduling gaps (3GPP Rel-13; 1 Mbit/s
		// peak only in full duplex). RF Wireless World, "Difference between
		// LTE-M Cat-0, Cat-M1, Cat-M2"; GSMA CLP.29 LTE-M Deployment Guide §7.7.
		DownBitsPerSecond: 300e3,
		Efficiency:        ipEff,
		Loss:              lteBLER,
		// LTE-M message latency at the edge of normal coverage is 0.1 s
		// ("Evaluation of LTE-M towards 5G IoT requirements", industry
		// white paper evaluated against 3GPP TR 45.820 / TR 38.913).
		RTT:       100 * time.Millisecond,
		SetupTime: handshakeRTTs * 100 * time.Millisecond,
		// nRF9160 product specification, Cat-M1 RRC connected, RMC at 0 dBm:
		// 45 mA at 3.7 V (a download mostly receives; the uplink carries
		// ACKs at low power in good coverage).
		ActiveWatts: 0.045 * 3.7,
		Wakeable:    true,
		Source:      "3GPP Rel-13 Cat-M1 HD-FDD; GSMA CLP.29; nRF9160 PS modem current; TS 36.213 BLER target",
	}
	nb := Link{
		Name: "nb-iot",
		// Cat-NB1 (Rel-13): 680-bit maximum downlink transport block, about
		// 26 kbit/s at the MAC layer once NPDCCH scheduling is paid
		// (Haltian, "NB1 vs NB2"; Cat-NB2 reaches ~127 kbit/s).
		DownBitsPerSecond: 26e3,
		Efficiency:        ipEff,
		Loss:              lteBLER,
		// Measured NB-IoT latency 837 ms (Ugwuanyi, Paul, Irvine,
		// "Survey of IoT for Developing Countries: Performance Analysis of
		// LoRaWAN and Cellular NB-IoT Networks", Electronics 10(18):2224, 2021).
		RTT:       837 * time.Millisecond,
		SetupTime: handshakeRTTs * 837 * time.Millisecond,
		// nRF9160 product specification, Cat-NB1 RRC connected at 0 dBm,
		// balanced TX/RX: 35 mA at 3.7 V. (3GPP TR 45.820's energy model
		// brackets it: 80 mW receiving, 500 mW transmitting.)
		ActiveWatts: 0.035 * 3.7,
		// In PSM the device cannot be paged until it wakes (GSMA NB-IoT
		// Deployment Guide, PSM): no MQTT wake-up.
		Wakeable: false,
		Source:   "3GPP Rel-13 Cat-NB1 TBS 680 bits; Electronics 10:2224 latency; nRF9160 PS; TS 36.213 BLER target",
	}
	return map[string]Link{
		"ethernet": {
			Name: "ethernet",
			// 100BASE-TX (IEEE 802.3 clause 25).
			DownBitsPerSecond: 100e6,
			Efficiency:        tcpPayload / ethernetWire * tlsRecordEfficiency,
			// Not a link property: an assumed 20 ms internet path to the
			// update server. Measure yours.
			RTT:       20 * time.Millisecond,
			SetupTime: handshakeRTTs * 20 * time.Millisecond,
			// "A typical active power 10/100 Mbps Ethernet PHY consumes
			// 110mW to over 300mW" (TI, "Why is Ethernet so power-hungry?").
			ActiveWatts: 0.2,
			Wakeable:    true,
			Source:      "IEEE 802.3 100BASE-TX framing; TI SSZTAM3 PHY power",
		},
		"wifi": {
			Name: "wifi",
			// 802.11n HT20, one spatial stream, MCS7, 800 ns GI: 65 Mbit/s
			// (IEEE 802.11-2016 Table 19-27).
			DownBitsPerSecond: 65e6,
			// Without aggregation each 1500-byte frame pays DIFS 34 µs,
			// mean backoff 7.5 × 9 µs, 36 µs of HT-mixed preamble, SIFS 16 µs
			// and a ~44 µs ACK (IEEE 802.11-2016 OFDM timing) against
			// ~190 µs of data: about half the PHY rate reaches TCP.
			Efficiency: 0.5 * tcpPayload / ipMTU * tlsRecordEfficiency,
			RTT:        20 * time.Millisecond, // assumed internet path, as for ethernet
			SetupTime:  handshakeRTTs * 20 * time.Millisecond,
			// ESP32 datasheet Table "Current Consumption Depending on RF
			// Modes": RX 802.11b/g/n 20 MHz 110 mA at 3.3 V.
			ActiveWatts: 0.110 * 3.3,
			Wakeable:    true,
			Source:      "IEEE 802.11-2016 HT20 MCS7 and OFDM timing; ESP32 datasheet RX current",
		},
		"cellular": lteM,
		"lte-m":    withName(lteM, "lte-m"),
		"nb-iot":   nb,
		"lora": {
			Name:              "lora",
			DownBitsPerSecond: loraDR5BitsPerSecond,
			Efficiency:        loraEff,
			// Assumed 10% of fragments lost and made up by the redundant
			// fragments TS004's forward error correction sends.
			Loss:       0.1,
			RTT:        loraReceiveDelay,
			DutyCycle:  loraDutyCycle,
			ChunkBytes: 0, // fragments are pushed in a multicast/Class C session, not requested
			// Class C keeps the receiver on between frames, so the radio is
			// on for the whole (duty-cycled) session.
			ListenContinuously: true,
			// SX1276 datasheet: receive current 10.8 mA (LoRa, 125 kHz,
			// LnaBoost off) at 3.3 V.
			ActiveWatts: 0.0108 * 3.3,
			Wakeable:    false,
			Source:      "LoRaWAN RP002 EU868 DR5 and payload table; SX1276 airtime formula and RX current; ETSI EN 300 220-2 1% duty cycle",
		},
	}
}

func withName(l Link, name string) Link {
	l.Name = name
	return l
}
