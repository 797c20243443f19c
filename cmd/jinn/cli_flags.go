package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jinn-fleet/jinn/client"
)

// envString is the value of the environment variable name, or def when it
// is unset or empty. Flags with a JINN_* variable take their default from it.
func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

const defaultServer = "http://127.0.0.1:8080"

// newFlagSet returns a verb's flag set, which reports its errors instead of
// exiting and prints its usage to the console.
func (c *console) newFlagSet(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet("jinn "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: jinn %s %s\n\n%s\n\nflags:\n", name, synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// server holds the flags that say how to reach jinn's HTTP API.
type server struct {
	url   string
	token string
	ca    string // PEM file of CAs to trust for an https:// server
}

func serverFlags(fs *flag.FlagSet) *server {
	s := &server{}
	fs.StringVar(&s.url, "server", envString("JINN_SERVER", defaultServer), "`URL` of jinn's HTTP API (env JINN_SERVER)")
	// No default shown: usage must not print a secret from the environment.
	fs.StringVar(&s.token, "token", "", "bearer `token` for the API (env JINN_TOKEN)")
	fs.StringVar(&s.ca, "server-ca", envString("JINN_SERVER_CA", ""), "CA certificates (PEM `file`) to trust for an https:// --server, beside the system's (env JINN_SERVER_CA)")
	return s
}

func (s *server) client() *client.Client {
	token := s.token
	if token == "" {
		token = envString("JINN_TOKEN", "")
	}
	opts := []client.Option{client.WithToken(token)}
	if s.ca != "" {
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: trustingTransport(s.ca)}))
	}
	return client.New(s.url, opts...)
}

// hasToken reports whether requests carry a token (--token or JINN_TOKEN).
func (s *server) hasToken() bool { return s.token != "" || os.Getenv("JINN_TOKEN") != "" }

// trustingTransport trusts the CAs in the PEM file caFile as well as the
// system's; a file that cannot be read fails every request, saying why.
func trustingTransport(caFile string) http.RoundTripper {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(caFile)
	if err == nil && !pool.AppendCertsFromPEM(pem) {
		err = fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	if err != nil {
		return failingTransport{fmt.Errorf("--server-ca: %w", err)}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// parseArgs parses flags placed anywhere among the positional arguments
// (`jinn status ID --json`), up to a "--" after which all are positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(fs *flag.FlagSet, args []string, min, max int, what string) error {
	if len(args) < min || (max >= 0 && len(args) > max) {
		fs.Usage()
		return fmt.Errorf("%s: want %s", fs.Name(), what)
	}
	return nil
}

// splitTags turns "type:exec, os:linux" into its tags.
func splitTags(s string) []string {
	var tags []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// criteriaFlag is a repeatable flag of comma separated tags: one criterion
// per use, in the order given.
type criteriaFlag [][]string

func (c *criteriaFlag) String() string {
	var s []string
	for _, crit := range *c {
		s = append(s, strings.Join(crit, ","))
	}
	return strings.Join(s, " ")
}

func (c *criteriaFlag) Set(s string) error {
	tags := splitTags(s)
	if len(tags) == 0 {
		return fmt.Errorf("no tags in %q", s)
	}
	*c = append(*c, tags)
	return nil
}

// envFlag is a repeatable K=V flag.
type envFlag map[string]string

func (e envFlag) String() string {
	var s []string
	for k, v := range e {
		s = append(s, k+"="+v)
	}
	return strings.Join(s, " ")
}

func (e envFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not K=V", s)
	}
	e[k] = v
	return nil
}

// secondsFlag is a duration given in seconds ("90") or as a Go duration
// ("10m"), kept in whole seconds, rounded up.
type secondsFlag int

func (f *secondsFlag) String() string { return strconv.Itoa(int(*f)) }

func (f *secondsFlag) Set(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return fmt.Errorf("negative: %d", n)
		}
		*f = secondsFlag(n)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is neither seconds nor a duration like 10m", s)
	}
	if d < 0 {
		return fmt.Errorf("negative: %s", s)
	}
	*f = secondsFlag((d + time.Second - 1) / time.Second)
	return nil
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
