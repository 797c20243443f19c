package scheduler

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
)

// The per-user active limit (Genie's active-limit). A user may have at most
// Config.UserActiveLimit unfinished jobs, or what Config.UserLimits says for
// them. The count is kept by the store's scripts (a set of each user's
// unfinished jobs, changed in the same script as the status), and the check
// and the record are one script, so concurrent submissions cannot pass the
// limit together.
//
// Over the limit, a request over HTTP is refused with 429 and nothing is
// recorded: its client is there to hear it and retry. A request published on
// jinn.submit is held instead: its producer is gone by then and a refusal
// would lose work that is valid and only early. The message is handed back
// with NakWithDelay and admitted once the user has room; it stays in
// JINN_SUBMIT (durable, replicated) meanwhile, so holding loses nothing.

// holdMax caps the delay between two looks at a held request.
const holdMax = 10 * time.Second

// holdDelay is how long a request held for the n-th time waits: 1s, 2s,
// 4s, 8s, then holdMax. A user at the limit costs a few admissions a minute
// per held request, and a held request is admitted at most holdMax after
// the user has room.
func holdDelay(n uint64) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 4 {
		return holdMax
	}
	return time.Duration(1<<(n-1)) * time.Second
}

// hold hands a request over its user's limit back to jinn.submit, to be
// admitted later. It is not recorded: until it is admitted, its id is
// unknown to the API.
func (c *Consumer) hold(msg jetstream.Msg, req *job.Request, limited *store.ActiveLimitError) {
	n := uint64(1)
	if md, err := msg.Metadata(); err == nil {
		n = md.NumDelivered
	}
	log := c.log.Debug
	if n == 1 {
		log = c.log.Info
	}
	log("request held: its user is at the active-job limit", "job", req.ID, "user", limited.User,
		"active", limited.Active, "limit", limited.Limit, "times", n)
	_ = msg.NakWithDelay(holdDelay(n))
}

// ParseUserLimits reads per-user limits: "alice=50,etl=500", or "@path" for
// a file with one user=limit a line (blank lines and lines starting with #
// are skipped). A limit of 0 means no limit for that user.
func ParseUserLimits(s string) (map[string]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var entries []string
	where := func(i int) string { return fmt.Sprintf("entry %d", i+1) }
	if path, ok := strings.CutPrefix(s, "@"); ok {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("user limits: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			entries = append(entries, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("user limits %s: %w", path, err)
		}
		where = func(i int) string { return fmt.Sprintf("%s line %d", path, i+1) }
	} else {
		entries = strings.Split(s, ",")
	}
	out := map[string]int{}
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" || strings.HasPrefix(e, "#") {
			continue
		}
		user, limit, ok := strings.Cut(e, "=")
		user, limit = strings.TrimSpace(user), strings.TrimSpace(limit)
		n, err := strconv.Atoi(limit)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("user limits, %s %q: write user=limit with a limit of 0 (none) or more, e.g. alice=50", where(i), e)
		}
		if err := job.ValidateUser("user", user); err != nil {
			return nil, fmt.Errorf("user limits, %s: %w", where(i), err)
		}
		if _, dup := out[user]; dup {
			return nil, fmt.Errorf("user limits, %s: user %s is listed twice", where(i), user)
		}
		out[user] = n
	}
	return out, nil
}
