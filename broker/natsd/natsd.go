// Package natsd runs an embedded NATS server with JetStream, alone or as one
// member of a cluster, so that jinn needs no other software to run.
package natsd

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
)

// Config of an embedded server.
type Config struct {
	// ConfigFile is a nats-server configuration file; when set, the fields
	// below override what it says only where they are non-zero.
	ConfigFile string
	// Listen is host:port for clients. Port -1 picks a free port.
	Listen string
	// StoreDir holds JetStream's data.
	StoreDir string
	// Name of this server; a cluster needs distinct names.
	Name string
	// ClusterName, ClusterListen and Routes make it a member of a cluster.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// SyncInterval is how often JetStream fsyncs. 0 keeps the server's
	// default (2 minutes); "always" is SyncAlways (every write, slowest).
	SyncInterval time.Duration
	SyncAlways   bool
}

// Start runs a server and waits until it accepts clients.
func Start(cfg Config, log hclog.Logger) (*server.Server, error) {
	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		o, err := server.ProcessConfigFile(cfg.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("nats config %s: %w", cfg.ConfigFile, err)
		}
		opts = o
	}
	opts.JetStream = true
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen %q: %w", cfg.Listen, err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.StoreDir != "" {
		opts.StoreDir = cfg.StoreDir
	}
	if cfg.Name != "" {
		opts.ServerName = cfg.Name
	}
	if cfg.SyncInterval > 0 {
		opts.SyncInterval = cfg.SyncInterval
	}
	if cfg.SyncAlways {
		opts.SyncAlways = true
	}
	if cfg.ClusterName != "" {
		opts.Cluster.Name = cfg.ClusterName
		if cfg.ClusterListen != "" {
			host, port, err := splitHostPort(cfg.ClusterListen)
			if err != nil {
				return nil, fmt.Errorf("cluster listen %q: %w", cfg.ClusterListen, err)
			}
			opts.Cluster.Host, opts.Cluster.Port = host, port
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	s.SetLoggerV2(&logAdapter{log.Named("nats")}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server on %s not ready after 30s", cfg.Listen)
	}
	return s, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// logAdapter sends the server's log lines to hclog; its notices are debug
// lines for jinn, since they are about NATS, not jobs.
type logAdapter struct{ l hclog.Logger }

func (a *logAdapter) Noticef(f string, v ...any) { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a *logAdapter) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a *logAdapter) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *logAdapter) Errorf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *logAdapter) Debugf(f string, v ...any)  { a.l.Trace(fmt.Sprintf(f, v...)) }
func (a *logAdapter) Tracef(f string, v ...any)  { a.l.Trace(fmt.Sprintf(f, v...)) }
