package loadtest

import (
	"errors"
	"strings"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/jinn-fleet/jinn/client"
)

// intakes spreads calls over several intakes and moves on to the next one
// when an intake does not answer or answers 5xx: any intake serves any job.
type intakes struct {
	clients []*client.Client
	next    atomic.Uint64
}

func newIntakes(servers string) *intakes {
	var cs []*client.Client
	for _, s := range strings.Split(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cs = append(cs, client.New(s))
		}
	}
	return &intakes{clients: cs}
}

func (in *intakes) do(call func(*client.Client) error) error {
	if len(in.clients) == 0 {
		return errors.New("loadtest: no intake URL")
	}
	start := in.next.Add(1)
	var err error
	for i := range in.clients {
		c := in.clients[(int(start)+i)%len(in.clients)]
		if err = call(c); err == nil {
			return nil
		}
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status < 500 {
			return err // the intake answered: another would answer the same
		}
	}
	return err
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
