package probe

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ccidgadget/ccidgadget/card"
	"github.com/ccidgadget/ccidgadget/ccid"
	"github.com/ccidgadget/ccidgadget/store"
)

// The checks against our reader with the real OpenPGP card over bbolt, time extension included: VERIFY PW3
// with the factory PIN, RSA-2048 attributes for the authentication key, and its generation, which takes far
// longer than the 2 ms time-extension interval.
func TestRunAgainstOpenPGPCard(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA-2048 key generation; run without -short")
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "card.db"), store.Options{KDF: store.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := card.New(st, card.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := newUSBReaderCard(t, ccid.DefaultDescriptor(), nil, 2*time.Millisecond, c)
	slow := [][]byte{
		verifyPW3,
		{0x00, 0xDA, 0x00, 0xC3, 0x06, 0x01, 0x08, 0x00, 0x00, 0x20, 0x00},
		keygen,
	}
	res := runChecks(t, u, Options{SlowAPDUs: slow, SlowTimeout: time.Minute})
	for _, id := range CheckIDs() {
		r := res[id]
		want := Pass
		if id == "notify-slot-change" {
			want = NotApplicable
		}
		if r.Verdict != want {
			t.Errorf("%s: %s (%s), want %s\n%s", id, r.Verdict, r.Detail, want, evidence(r))
		}
	}
	t.Logf("time-extension: %s", res["time-extension"].Detail)
}
