// Package store is the OpenPGP card's persistent state in one bbolt file: data objects, cardholder
// certificates, PIN verifiers with their retry counters, and private keys sealed under a data key that only a
// correct PIN unwraps. It knows OpenPGP only as far as tags, PIN references and key roles; the card package
// decides what the bytes mean and who may change them.
//
// (Full layout, crypto and threat model: see below once written.)
package store
