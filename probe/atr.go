package probe

import (
	"errors"
	"fmt"
)

// ATRInfo is what the hosts read from an ATR (ISO/IEC 7816-3 §8.2).
type ATRInfo struct {
	Protocols  []byte // T values offered by the TDi bytes (T=0 when there is none)
	Historical int    // K, the number of historical bytes
	HasTCK     bool
}

// ParseATR checks an ATR the way GnuPG's update_param_by_atr and libccid do: at most 33 bytes, TS 0x3B or 0x3F,
// interface bytes that fit, a TCK whenever a protocol other than T=0 is offered with XOR(T0..TCK) = 0, and a
// length of exactly header + historical bytes + TCK.
func ParseATR(atr []byte) (ATRInfo, error) {
	var a ATRInfo
	if len(atr) < 2 {
		return a, fmt.Errorf("ATR of %d bytes", len(atr))
	}
	if len(atr) > 33 {
		return a, fmt.Errorf("ATR of %d bytes, more than libccid's 33-byte buffer", len(atr))
	}
	if atr[0] != 0x3B && atr[0] != 0x3F {
		return a, fmt.Errorf("TS 0x%02X, want 0x3B or 0x3F", atr[0])
	}
	a.Historical = int(atr[1] & 0x0F)
	y := atr[1] >> 4
	i := 2
	sawTD := false
	for {
		for bit := byte(1); bit <= 8; bit <<= 1 {
			if y&bit != 0 {
				if i >= len(atr) {
					return a, errors.New("interface bytes run past the end")
				}
				i++
			}
		}
		if y&8 == 0 {
			break
		}
		td := atr[i-1]
		sawTD = true
		a.Protocols = appendUnique(a.Protocols, td&0x0F)
		y = td >> 4
	}
	if !sawTD {
		a.Protocols = []byte{0}
	}
	for _, p := range a.Protocols {
		if p != 0 {
			a.HasTCK = true
		}
	}
	want := i + a.Historical
	if a.HasTCK {
		want++
	}
	if len(atr) != want {
		return a, fmt.Errorf("ATR of %d bytes, its T0 and TDi bytes say %d", len(atr), want)
	}
	if a.HasTCK {
		var x byte
		for _, c := range atr[1:] {
			x ^= c
		}
		if x != 0 {
			return a, fmt.Errorf("TCK 0x%02X wrong: XOR(T0..TCK) = 0x%02X", atr[len(atr)-1], x)
		}
	}
	return a, nil
}

func appendUnique(s []byte, v byte) []byte {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// OffersT1 reports whether the ATR offers T=1.
func (a ATRInfo) OffersT1() bool {
	for _, p := range a.Protocols {
		if p == 1 {
			return true
		}
	}
	return false
}
