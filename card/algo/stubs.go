package algo

import "io"

type unimplemented struct{}

func (unimplemented) generate(Attributes, io.Reader) (PrivateKey, error) { return nil, ErrUnsupported }
func (unimplemented) importParts(Attributes, map[byte][]byte) (PrivateKey, error) {
	return nil, ErrUnsupported
}
func (unimplemented) unmarshal(Attributes, []byte) (PrivateKey, error) { return nil, ErrUnsupported }

type rsaFamily struct{ unimplemented }
type ed25519Family struct{ unimplemented }
type ed448Family struct{ unimplemented }
type x25519Family struct{ unimplemented }
type x448Family struct{ unimplemented }
type weierstrassFamily struct{ unimplemented }
