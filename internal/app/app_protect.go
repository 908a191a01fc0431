package app

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/golivestream/live/origin"
	"github.com/golivestream/live/protection"
)

// ProtectFlags are the flags of encrypted streams (issue #25), shared by
// live and origin.
type ProtectFlags struct {
	encrypt        *bool
	encryptStreams *string
	keyPeriod      *time.Duration
	keySecret      *string
	keyServer      *string
}

// keySecretEnv holds the key secret, in hex, when -key-secret is not
// given: out of the process list.
const keySecretEnv = "LIVE_KEY_SECRET"

// keyServerAuthEnv, when set, is sent as the Authorization header of the
// requests to -key-server.
const keyServerAuthEnv = "LIVE_KEY_SERVER_AUTH"

func addProtectFlags(fs *flag.FlagSet) *ProtectFlags {
	return &ProtectFlags{
		encrypt:        fs.Bool("encrypt", false, "encrypt every stream (CMAF cbcs, keys delivered by EME ClearKey license requests to viewers who may watch; see -encrypt-streams)"),
		encryptStreams: fs.String("encrypt-streams", "", "regular expression of the stream names to encrypt (empty: every stream with -encrypt, none without); make them private too (-private-streams) so that keys go only to token holders"),
		keyPeriod:      fs.Duration("key-period", time.Hour, "how long a key is used: a new key from the first segment at or after each multiple of it on a stream's timeline (0: one key per stream instance)"),
		keySecret:      fs.String("key-secret", "", "file holding the secret (64 hex digits) the keys are derived from; origins serving a stream together (-etcd) must share it (default: $"+keySecretEnv+"; neither: a random secret, and the keys die with the process, so archived encrypted streams do not play after it)"),
		keyServer:      fs.String("key-server", "", "CPIX URL of a DRM key server to take the content keys from, with Widevine/PlayReady/FairPlay signalling (Authorization header: $"+keyServerAuthEnv+"; empty: keys derived from the secret)"),
	}
}

// protection returns the origin's Protection the flags describe, nil
// when no stream is encrypted, and whether its secret is shared (given,
// not random).
func (f *ProtectFlags) protection() (*origin.Protection, bool, error) {
	if !*f.encrypt && *f.encryptStreams == "" {
		if *f.keyServer != "" || *f.keySecret != "" {
			return nil, false, errors.New("-key-server and -key-secret need -encrypt or -encrypt-streams")
		}
		return nil, false, nil
	}
	p := &origin.Protection{KeyPeriod: *f.keyPeriod}
	if *f.encryptStreams != "" {
		re, err := regexp.Compile(*f.encryptStreams)
		if err != nil {
			return nil, false, fmt.Errorf("-encrypt-streams: %w", err)
		}
		p.Encrypt = re.MatchString
	}
	secret, err := f.secret()
	if err != nil {
		return nil, false, err
	}
	scfg := protection.StoreConfig{Secret: secret}
	if *f.keyServer != "" {
		ccfg := protection.CPIXConfig{
			URL:     *f.keyServer,
			Systems: []protection.SystemID{protection.SystemWidevine, protection.SystemPlayReady, protection.SystemFairPlay},
		}
		if auth := os.Getenv(keyServerAuthEnv); auth != "" {
			ccfg.Header = http.Header{"Authorization": {auth}}
		}
		cpix, err := protection.NewCPIXClient(ccfg)
		if err != nil {
			return nil, false, fmt.Errorf("-key-server: %w", err)
		}
		scfg.Fetch = cpix.Fetch
		p.Systems = true
	}
	store, err := protection.NewStore(scfg)
	if err != nil {
		return nil, false, err
	}
	p.Keys = store
	return p, secret != nil, nil
}

// secret reads the key secret from -key-secret's file or $LIVE_KEY_SECRET:
// nil when neither is given.
func (f *ProtectFlags) secret() ([]byte, error) {
	text := os.Getenv(keySecretEnv)
	if *f.keySecret != "" {
		b, err := os.ReadFile(*f.keySecret)
		if err != nil {
			return nil, fmt.Errorf("-key-secret: %w", err)
		}
		text = string(b)
	}
	if text == "" {
		return nil, nil
	}
	secret, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil || len(secret) != 32 {
		return nil, errors.New("key secret: want 64 hex digits (openssl rand -hex 32)")
	}
	return secret, nil
}
