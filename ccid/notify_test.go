package ccid_test

import (
	"bytes"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// Notify queues any interrupt message as given, without changing slot state, and refuses bulk messages.
func TestNotify(t *testing.T) {
	r, err := ccid.NewReader(ccid.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte{0x50, 0x03}
	if err := r.Notify(msg); err != nil {
		t.Fatal(err)
	}
	msg[1] = 0 // the reader keeps its own copy
	if got := <-r.Notifications(); !bytes.Equal(got, []byte{0x50, 0x03}) {
		t.Fatalf("% X", got)
	}
	if err := r.Remove(0); err == nil {
		t.Error("a spurious 50 03 inserted a card")
	}
	for _, bad := range [][]byte{nil, {0x50}, {0x80, 0x00}} {
		if err := r.Notify(bad); err == nil {
			t.Errorf("% X accepted", bad)
		}
	}
}
