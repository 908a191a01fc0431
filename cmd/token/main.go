// Command token makes the keys and the tokens of signed playback URLs
// (package access), for operators and tests:
//
//	token keygen -kid k1 [-out DIR]
//	token issue -key k1.key [-kid k1] -stream demo [-prefix] [-ttl 1h] [-cidr 10.0.0.0/8] [-sid S] [-max-addrs N]
//	token verify -keys DIR|FILE[,...] -stream demo [-addr 192.0.2.1] [-revoked FILE] TOKEN
//	token revoke -etcd URL[,URL] -sid S [-ttl 24h] [-reason TEXT]
//	token unrevoke -etcd URL[,URL] -sid S
//
// keygen writes DIR/KID.key (the private key, PEM PKCS #8, mode 0600: it
// stays with whoever issues tokens) and DIR/KID.pub (the public key, PEM
// PKIX: the PoPs get it). issue prints a token; verify prints what a
// token says and whether a PoP holding the keys would admit it. revoke
// lists a session as revoked in the fleet's stream directory, in etcd,
// for ttl, which must cover the lifetime of the session's tokens: every
// PoP given -etcd and -token-keys denies its tokens within a moment;
// unrevoke takes it off the list.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golivestream/live/access"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, time.Now))
}

const usage = `usage:
  token keygen -kid KID [-out DIR]
  token issue -key FILE [-kid KID] -stream NAME [-prefix] [-ttl 1h] [-cidr NET] [-sid ID] [-max-addrs N]
  token verify -keys PATH[,PATH] -stream NAME [-addr IP] [-revoked FILE] TOKEN
  token revoke -etcd URL[,URL] -sid ID [-ttl 24h] [-reason TEXT]
  token unrevoke -etcd URL[,URL] -sid ID
`

// errUsage is a mistake in the command line, already explained.
var errUsage = errors.New("usage")

// run runs the subcommand of args and returns the exit code: 0 when done
// (verify: the token is admitted), 1 when it failed (verify: refused), 2
// for a wrong command line.
func run(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "keygen":
		err = keygen(args[1:], stdout, stderr)
	case "issue":
		err = issue(args[1:], stdout, stderr, now)
	case "verify":
		err = verify(args[1:], stdout, stderr, now)
	case "revoke":
		err = revoke(args[1:], stdout, stderr)
	case "unrevoke":
		err = unrevoke(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "token: unknown command %q\n%s", args[0], usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "token:", err)
		return 1
	}
	return 0
}

// parse parses a subcommand's flags, which take nargs arguments after
// them, and must give the flags named required a value.
func parse(fs *flag.FlagSet, args []string, nargs int, required ...string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != nargs {
		fmt.Fprintf(fs.Output(), "token %s: want %d arguments after the flags, have %d\n", fs.Name(), nargs, fs.NArg())
		return errUsage
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			fmt.Fprintf(fs.Output(), "token %s: -%s is required\n", fs.Name(), name)
			return errUsage
		}
	}
	return nil
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", ".", "directory to write KID.key and KID.pub in")
	kid := fs.String("kid", "", "key id: the files' name, and what tokens signed with the key name (required)")
	if err := parse(fs, args, 0, "kid"); err != nil {
		return err
	}
	if !access.ValidKeyID(*kid) {
		return fmt.Errorf("-kid %q: want [A-Za-z0-9._-]{1,64}", *kid)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	privPEM, err := access.MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	pubPEM, err := access.MarshalPublicKey(pub, "")
	if err != nil {
		return err
	}
	privPath, pubPath := filepath.Join(*out, *kid+".key"), filepath.Join(*out, *kid+".pub")
	// Never over an existing key: a lost private key cannot be undone.
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		return err
	}
	if err := writeNew(privPath, privPEM, 0o600); err != nil {
		return errors.Join(err, os.Remove(pubPath))
	}
	fmt.Fprintf(stdout, "%s\tprivate key: keep it where tokens are issued\n%s\tpublic key: give it to the PoPs\n", privPath, pubPath)
	return nil
}

// writeNew writes data to a file that must not exist yet.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(err, f.Close(), os.Remove(path))
	}
	return f.Close()
}

func issue(args []string, stdout, stderr io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "", "private key file, PEM PKCS #8 (required)")
	kid := fs.String("kid", "", "key id the PoPs know the public key by (default: the key file's name without extension)")
	stream := fs.String("stream", "", "stream the token admits, or with -prefix the start of their names (required)")
	prefix := fs.Bool("prefix", false, "admit every stream whose name starts with -stream")
	ttl := fs.Duration("ttl", time.Hour, "how long the token admits, from now")
	cidr := fs.String("cidr", "", "client network the token is bound to, such as 10.0.0.0/8 (empty: any)")
	sid := fs.String("sid", "", "session id, which makes the token revocable (empty: none)")
	maxAddrs := fs.Int("max-addrs", 0, fmt.Sprintf("client addresses that may use the token at once, up to %d (0: any number)", access.MaxAddrsCap))
	if err := parse(fs, args, 0, "key", "stream"); err != nil {
		return err
	}
	if *ttl <= 0 {
		return fmt.Errorf("-ttl %v: want more than 0", *ttl)
	}
	if *kid == "" {
		*kid = strings.TrimSuffix(filepath.Base(*keyFile), filepath.Ext(*keyFile))
	}
	key, err := access.LoadPrivateKey(*keyFile)
	if err != nil {
		return err
	}
	t := now()
	c := access.Claims{Stream: *stream, Prefix: *prefix, Session: *sid, MaxAddrs: *maxAddrs, IssuedAt: t, Expires: t.Add(*ttl)}
	if *cidr != "" {
		if c.Network, err = netip.ParsePrefix(*cidr); err != nil {
			return fmt.Errorf("-cidr: %w", err)
		}
	}
	tok, err := access.Issue(key, *kid, c)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func verify(args []string, stdout, stderr io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keys := fs.String("keys", "", "public keys: directories of KID.pub files or PEM files, comma-separated (required)")
	stream := fs.String("stream", "", "stream asked for (required)")
	addr := fs.String("addr", "", "client address (empty: unknown)")
	revoked := fs.String("revoked", "", "revocation list, one session id a line (empty: none)")
	if err := parse(fs, args, 1, "keys", "stream"); err != nil {
		return err
	}
	var client netip.Addr
	if *addr != "" {
		var err error
		if client, err = netip.ParseAddr(*addr); err != nil {
			return fmt.Errorf("-addr: %w", err)
		}
	}
	ks, err := access.LoadPublicKeys(strings.Split(*keys, ",")...)
	if err != nil {
		return fmt.Errorf("-keys: %w", err)
	}
	var rs *access.RevocationSet
	if *revoked != "" {
		if rs, err = access.LoadRevocations(*revoked); err != nil {
			return fmt.Errorf("-revoked: %w", err)
		}
	}
	v, err := access.New(access.Config{Keys: ks, Revocations: rs, Now: now})
	if err != nil {
		return err
	}
	tok := strings.TrimSpace(fs.Arg(0))
	if c, kid, err := v.Parse(tok); err == nil {
		printClaims(stdout, kid, c)
	}
	if err := v.Verify(tok, *stream, client); err != nil {
		return fmt.Errorf("refused, %d %s: %w", access.Status(err), access.Reason(err), err)
	}
	fmt.Fprintln(stdout, "admitted")
	return nil
}

// printClaims writes what a token says, one claim a line.
func printClaims(w io.Writer, kid string, c access.Claims) {
	fmt.Fprintf(w, "kid\t%s\n", kid)
	if c.Prefix {
		fmt.Fprintf(w, "streams\t%s*\n", c.Stream)
	} else {
		fmt.Fprintf(w, "stream\t%s\n", c.Stream)
	}
	fmt.Fprintf(w, "expires\t%s\n", c.Expires.UTC().Format(time.RFC3339))
	if !c.NotBefore.IsZero() {
		fmt.Fprintf(w, "not before\t%s\n", c.NotBefore.UTC().Format(time.RFC3339))
	}
	if !c.IssuedAt.IsZero() {
		fmt.Fprintf(w, "issued\t%s\n", c.IssuedAt.UTC().Format(time.RFC3339))
	}
	if c.Network.IsValid() {
		fmt.Fprintf(w, "network\t%s\n", c.Network)
	}
	if c.Session != "" {
		fmt.Fprintf(w, "session\t%s\n", c.Session)
	}
	if c.MaxAddrs > 0 {
		fmt.Fprintf(w, "max addresses\t%d\n", c.MaxAddrs)
	}
}
