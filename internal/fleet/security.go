package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// Security says how a role proves itself to NATS and Redis and how it checks
// them. Every field is a file path; empty ones are not used. The Redis user
// and password go in the Redis URL (redis://user:password@host:6379/0), TLS
// with a rediss:// URL or RedisTLSCA.
type Security struct {
	NATSCreds   string // a NATS .creds file (JWT and nkey seed)
	NATSNkey    string // a file with an nkey seed (SU...)
	NATSTLSCA   string // CA certificates that sign the NATS servers' (PEM)
	NATSTLSCert string // client certificate for NATS (PEM), with NATSTLSKey
	NATSTLSKey  string
	RedisTLSCA  string // CA certificates that sign Redis's (PEM); turns TLS on
	// RedisTLSCert and RedisTLSKey: a client certificate for Redis (PEM).
	RedisTLSCert string
	RedisTLSKey  string
}

// natsOptions returns the NATS options of s.
func (s Security) natsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if s.NATSCreds != "" && s.NATSNkey != "" {
		return nil, errors.New("give a NATS credentials file or an nkey seed file, not both")
	}
	if s.NATSCreds != "" {
		if _, err := os.Stat(s.NATSCreds); err != nil {
			return nil, fmt.Errorf("nats credentials: %w", err)
		}
		opts = append(opts, nats.UserCredentials(s.NATSCreds))
	}
	if s.NATSNkey != "" {
		o, err := nats.NkeyOptionFromSeed(s.NATSNkey)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed %s: %w", s.NATSNkey, err)
		}
		opts = append(opts, o)
	}
	if s.NATSTLSCA != "" {
		if _, err := os.Stat(s.NATSTLSCA); err != nil {
			return nil, fmt.Errorf("nats tls ca: %w", err)
		}
		opts = append(opts, nats.RootCAs(s.NATSTLSCA))
	}
	if (s.NATSTLSCert == "") != (s.NATSTLSKey == "") {
		return nil, errors.New("give both a NATS client certificate and its key, or neither")
	}
	if s.NATSTLSCert != "" {
		if _, err := tls.LoadX509KeyPair(s.NATSTLSCert, s.NATSTLSKey); err != nil {
			return nil, fmt.Errorf("nats client certificate: %w", err)
		}
		opts = append(opts, nats.ClientCert(s.NATSTLSCert, s.NATSTLSKey))
	}
	return opts, nil
}

// redisTLS adds the TLS settings of s to opts (parsed from the Redis URL; a
// rediss:// URL has already turned TLS on).
func (s Security) redisTLS(opts *redis.Options) error {
	if s.RedisTLSCA == "" && s.RedisTLSCert == "" && s.RedisTLSKey == "" {
		return nil
	}
	cfg := opts.TLSConfig
	if cfg == nil {
		host := opts.Addr
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	cfg = cfg.Clone()
	if s.RedisTLSCA != "" {
		pem, err := os.ReadFile(s.RedisTLSCA)
		if err != nil {
			return fmt.Errorf("redis tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("redis tls ca %s: no PEM certificate in it", s.RedisTLSCA)
		}
		cfg.RootCAs = pool
	}
	if (s.RedisTLSCert == "") != (s.RedisTLSKey == "") {
		return errors.New("give both a Redis client certificate and its key, or neither")
	}
	if s.RedisTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.RedisTLSCert, s.RedisTLSKey)
		if err != nil {
			return fmt.Errorf("redis client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	opts.TLSConfig = cfg
	return nil
}

// ServeTLS wraps ln in TLS with the certificate and key files (PEM) and sets
// srv to serve HTTP/2 over it; with no files it returns ln unchanged.
func ServeTLS(ln net.Listener, srv *http.Server, certFile, keyFile string) (net.Listener, error) {
	if certFile == "" && keyFile == "" {
		return ln, nil
	}
	if certFile == "" || keyFile == "" {
		_ = ln.Close()
		return nil, errors.New("the intake's TLS needs both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("intake TLS certificate: %w", err)
	}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	return tls.NewListener(ln, srv.TLSConfig), nil
}

// args are the flags of `jinn worker` that give a child worker the same
// settings (roles_security.go in cmd/jinn defines them).
func (s Security) args() []string {
	var args []string
	for _, f := range []struct{ flag, file string }{
		{"--nats-creds", s.NATSCreds}, {"--nats-nkey", s.NATSNkey}, {"--nats-tls-ca", s.NATSTLSCA},
		{"--nats-tls-cert", s.NATSTLSCert}, {"--nats-tls-key", s.NATSTLSKey},
		{"--redis-tls-ca", s.RedisTLSCA}, {"--redis-tls-cert", s.RedisTLSCert}, {"--redis-tls-key", s.RedisTLSKey},
	} {
		if f.file != "" {
			args = append(args, f.flag, f.file)
		}
	}
	return args
}
