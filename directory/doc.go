// Package directory is the stream directory of issue #21: which origins
// are alive, how loaded they are, and which of them serve which stream,
// kept in etcd so that origins, PoPs and the balancer of several
// machines share one view of it.
//
// # Keys
//
// Under a prefix (DefaultPrefix unless configured), in JSON:
//
//	origins/{id}               Origin: zone, public and RTMP URLs, load, updated
//	streams/{name}/{origin id} StreamState: epoch, role, newest segment, fingerprint, updated
//	epochs/{name}              EpochRecord: epoch, fingerprint, created, holder
//	revoked/{session id}       Revocation: revoked, expires, reason
//
// An origin (Registration) writes its origins/ key and its streams/ keys
// under one lease of a few seconds that it keeps alive, so that when its
// process dies its keys go with the lease. PoPs and the balancer (View)
// watch the prefix and answer from memory: no request waits on etcd.
//
// Revoked sessions of playback tokens (issue #23) are written by an
// operator (Revoke, cmd/token revoke), each under a lease as long as the
// lifetime of the session's tokens, and followed by PoPs (Revocations).
//
// # Epochs
//
// Two origins ingesting the same publisher (dual hot ingest) must name
// the stream's instance alike. AgreeEpoch does it in a transaction: the
// first creates epochs/{name}, the others adopt it when their setup's
// fingerprint matches and are refused (ErrSetupMismatch) when it does
// not. The record lives under the lease of one origin that agreed on it,
// its holder. When the holder's lease ends (its process died) or it
// removes the stream, the record goes, and every other origin still
// serving the stream puts it back under its own lease at once (each
// Registration watches epochs/ for deletions). Between those two moments
// the stream keys of the origins still serving it, which carry the epoch
// and the fingerprint and which AgreeEpoch writes together with the
// agreement, stand for the record: AgreeEpoch reads them when the record
// is missing. So an epoch lives exactly as long as some origin that
// agreed on it serves the stream, at the cost of no request while
// nothing changes (a lease per stream kept alive by every origin serving
// it would cost a keep-alive per stream and origin every few seconds).
//
// An origin makes the others' files only if it gets the publisher from
// its first access unit: its numbering starts at 0. So it adopts an epoch
// only within JoinWindow of its making (an encoder pushing to two origins
// connects to both before it sends media). One that comes later (it was
// restarted while its publisher reconnects) serves an epoch of its own
// on standby (RoleStandby), which routes take only when no origin of the
// stream's epoch is left; and a record this origin left itself, with no
// other origin serving the stream, is replaced by a new epoch, as a lone
// origin's restart makes one: the same URLs never name other media.
//
// # Rates
//
// An origin sends etcd, while nothing but its load and segments change:
// a lease keep-alive every TTL/3 (0.6/s at the default 5 s), and at most
// one transaction per LoadInterval (0.2/s at 5 s) carrying its load and
// the newest segment of each stream whose record is SegmentInterval old
// (10 s), 99 records a transaction. Starting, ending or changing a
// stream is written at once. A View sends a progress request every
// ProgressInterval (0.2/s at 5 s). Lookups send nothing.
package directory

import "errors"

// Errors callers branch on.
var (
	// ErrSetupMismatch says that the stream is live with an epoch made
	// for another setup (see AgreeEpoch).
	ErrSetupMismatch = errors.New("the stream is live with another setup")
	// ErrNoOrigins says that no origin can take a stream.
	ErrNoOrigins = errors.New("no origin to place the stream on")
	// ErrStale says that the view does not follow etcd now, so it makes
	// no new placement.
	ErrStale = errors.New("the directory view is stale")
	// ErrClientClosed says that the etcd client was closed under a
	// running Registration or View.
	ErrClientClosed = errors.New("etcd client closed")
)
