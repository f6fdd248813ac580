module github.com/ccidgadget/ccidgadget

go 1.26.8

require (
	github.com/ProtonMail/go-crypto v1.1.6
	github.com/cloudflare/circl v1.6.1
	github.com/decred/dcrd/dcrec/secp256k1/v4 v4.4.1
	github.com/google/gousb v1.1.3
	go.etcd.io/bbolt v1.4.0
	golang.org/x/crypto v0.36.0
	golang.org/x/sys v0.31.0
)
