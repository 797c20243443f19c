package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/intake"
	"github.com/jinn-fleet/jinn/internal/fleet"
)

// securityFlags are the flags with which every role reaches a NATS and a
// Redis that want credentials or TLS (docs/auth.md).
func securityFlags(fs *flag.FlagSet, s *fleet.Security) {
	fs.StringVar(&s.NATSCreds, "nats-creds", envString("JINN_NATS_CREDS", ""), "NATS credentials `file` (JWT and nkey seed) (env JINN_NATS_CREDS)")
	fs.StringVar(&s.NATSNkey, "nats-nkey", envString("JINN_NATS_NKEY", ""), "`file` with a NATS nkey seed (env JINN_NATS_NKEY)")
	fs.StringVar(&s.NATSTLSCA, "nats-tls-ca", envString("JINN_NATS_TLS_CA", ""), "CA certificates (PEM `file`) that sign the NATS servers' certificates (env JINN_NATS_TLS_CA)")
	fs.StringVar(&s.NATSTLSCert, "nats-tls-cert", envString("JINN_NATS_TLS_CERT", ""), "client certificate (PEM `file`) for NATS, with --nats-tls-key (env JINN_NATS_TLS_CERT)")
	fs.StringVar(&s.NATSTLSKey, "nats-tls-key", envString("JINN_NATS_TLS_KEY", ""), "key (PEM `file`) of --nats-tls-cert (env JINN_NATS_TLS_KEY)")
	fs.StringVar(&s.RedisTLSCA, "redis-tls-ca", envString("JINN_REDIS_TLS_CA", ""), "CA certificates (PEM `file`) that sign Redis's certificate; turns TLS on (or use a rediss:// URL; user and password go in the URL) (env JINN_REDIS_TLS_CA)")
	fs.StringVar(&s.RedisTLSCert, "redis-tls-cert", envString("JINN_REDIS_TLS_CERT", ""), "client certificate (PEM `file`) for Redis, with --redis-tls-key (env JINN_REDIS_TLS_CERT)")
	fs.StringVar(&s.RedisTLSKey, "redis-tls-key", envString("JINN_REDIS_TLS_KEY", ""), "key (PEM `file`) of --redis-tls-cert (env JINN_REDIS_TLS_KEY)")
}

// intakeSecurity holds the intake's flags: its tokens and its TLS.
type intakeSecurity struct {
	tokens          string
	tlsCert, tlsKey string
	reload          time.Duration
}

func intakeSecurityFlags(fs *flag.FlagSet) *intakeSecurity {
	s := &intakeSecurity{}
	fs.StringVar(&s.tokens, "tokens", envString("JINN_TOKENS", ""), "tokens `file`, lines `sha256:HEX USER ROLE` (jinn token makes them); no file: no auth, anyone may do anything (env JINN_TOKENS)")
	fs.DurationVar(&s.reload, "tokens-reload", envDuration("JINN_TOKENS_RELOAD", 5*time.Second), "how often the tokens file is checked for changes; SIGHUP reloads it at once; 0: only SIGHUP (env JINN_TOKENS_RELOAD)")
	fs.StringVar(&s.tlsCert, "tls-cert", envString("JINN_TLS_CERT", ""), "certificate (PEM `file`, with its chain) to serve the API over HTTPS, with --tls-key (env JINN_TLS_CERT)")
	fs.StringVar(&s.tlsKey, "tls-key", envString("JINN_TLS_KEY", ""), "key (PEM `file`) of --tls-cert (env JINN_TLS_KEY)")
	return s
}

// auth loads the tokens file and keeps it fresh until ctx ends; nil without
// a file, after a warning that anyone may do anything.
func (s *intakeSecurity) auth(ctx context.Context, log hclog.Logger, role string) (*intake.Auth, error) {
	if s.tokens == "" {
		log.Warn("AUTH IS OFF: anyone who reaches the API may submit, kill and reconfigure anything; give --tokens FILE (docs/auth.md)", "role", role)
		return nil, nil
	}
	a, err := intake.LoadAuth(s.tokens, log)
	if err != nil {
		return nil, fmt.Errorf("%w (see docs/auth.md for the format)", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := a.Reload(); err != nil {
					log.Error("reload the tokens file; the old tokens stay in use", "error", err)
				}
			}
		}
	}()
	if s.reload > 0 {
		go a.Watch(ctx, s.reload)
	}
	return a, nil
}

// runToken prints a new random token and the line of the tokens file that
// grants it: the token goes to its user, the line to the file.
func runToken(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("jinn token", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: jinn token USER ROLE\n\nPrints a new token (give it to USER) and its line for the --tokens file.\nROLE is user, operator or admin.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return fmt.Errorf("jinn token: want USER ROLE")
	}
	if _, err := intake.ParseRole(fs.Arg(1)); err != nil {
		return err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	token := "jinn_" + base64.RawURLEncoding.EncodeToString(b)
	fmt.Printf("token: %s\nline:  %s %s %s\n", token, intake.HashToken(token), fs.Arg(0), fs.Arg(1))
	return nil
}
