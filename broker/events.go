package broker

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/jinn-fleet/jinn/job"
)

// eventsAll matches the status events of every job.
const eventsAll = eventsPrefix + ">"

// SubscribeAllEvents delivers the status changes of every job until
// unsubscribed: the feed of live views that show many jobs (the web UI's
// jobs list). Like every event, they are best effort: a subscriber that
// must not miss a change reads the job's record.
func (b *Broker) SubscribeAllEvents(fn func(job.Event)) (*nats.Subscription, error) {
	sub, err := b.NC.Subscribe(eventsAll, func(m *nats.Msg) {
		var ev job.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			fn(ev)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", eventsAll, err)
	}
	return sub, nil
}
