package fleet

import (
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// expireInRealTime makes the embedded Redis expire keys as time passes:
// miniredis only counts down TTLs when told to. Without it a dead worker's
// heartbeat would never expire, and its jobs would never get a new attempt.
// It returns a function that stops it.
func expireInRealTime(m *miniredis.Miniredis, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
