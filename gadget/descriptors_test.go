package gadget

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ccidgadget/ccidgadget/ccid"
)

// ccidDesc is the class descriptor of research note ccid-host-stack §7.5.
var ccidDesc = unhex("36 21 10 01 00 07 02 00 00 00 A0 0F 00 00 A0 0F 00 00 00 00 2A 00 00 00 2A 00 00 00" +
	"FE 00 00 00 00 00 00 00 00 00 00 00 7E 00 04 00 0A 08 00 00 FF FF 00 00 00 01")

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		panic(err)
	}
	return b
}

func TestDescriptors(t *testing.T) {
	got, err := Descriptors(ccidDesc)
	if err != nil {
		t.Fatal(err)
	}
	iface := "09 04 00 00 03 0B 00 00 01"
	want := unhex(
		"03000000 BC000000 03000000 05000000 05000000" + // magic v2, length 188, FS|HS, 5 + 5 descriptors
			iface + hex.EncodeToString(ccidDesc) +
			"07 05 81 02 4000 00   07 05 02 02 4000 00   07 05 83 03 0800 10" + // full speed: bulk 64, intr 8 / 16 ms
			iface + hex.EncodeToString(ccidDesc) +
			"07 05 81 02 0002 00   07 05 02 02 0002 00   07 05 83 03 0800 08") // high speed: bulk 512, intr 2^7 µframes
	if !bytes.Equal(got, want) {
		t.Fatalf("descriptors\n got % x\nwant % x", got, want)
	}
	// libccid's rule: the CCID descriptor is the only extra descriptor between interface and first endpoint.
	if i := bytes.Index(got, unhex(iface)); i != 20 || got[i+9] != 54 || got[i+9+54+1] != descTypeEndpoint {
		t.Errorf("interface at %d not followed by exactly one 54-byte class descriptor", i)
	}

	for _, bad := range [][]byte{nil, ccidDesc[:53], append(append([]byte(nil), ccidDesc...), 0), append([]byte{54, 0x22}, ccidDesc[2:]...)} {
		if _, err := Descriptors(bad); err == nil {
			t.Errorf("Descriptors(% x) accepted", bad)
		}
	}
}

func TestStrings(t *testing.T) {
	got := Strings("CCID")
	want := unhex("02000000 17000000 01000000 01000000 0904 43434944 00")
	if !bytes.Equal(got, want) {
		t.Fatalf("strings\n got % x\nwant % x", got, want)
	}
}

func TestParseEvents(t *testing.T) {
	b := append(event(EventBind, Setup{}), event(EventSetup, Setup{0x21, 0x01, 0x0700, 0, 0})...)
	evs, err := parseEvents(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Type != EventBind || evs[1].Type != EventSetup ||
		evs[1].Setup != (Setup{RequestType: 0x21, Request: 1, Value: 0x0700}) {
		t.Fatalf("events = %+v", evs)
	}
	if _, err := parseEvents(b[:13]); err == nil {
		t.Error("13 bytes accepted")
	}
	if s := EventType(9).String(); s != "EVENT(9)" {
		t.Errorf("String = %q", s)
	}
}

func TestDescriptorsFromDefault(t *testing.T) {
	// The reader's default class descriptor is the one the byte-exact test above uses.
	cd, err := ccid.DefaultDescriptor().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cd, ccidDesc) {
		t.Fatalf("ccid.DefaultDescriptor() = % x\nwant % x", cd, ccidDesc)
	}
}
