package loadtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Shape is what each job of a run does.
type Shape struct {
	Kind string // "true", "sleep" or "memhog"
	// Sleep: fixed (Min only), uniform between Min and Max, or exponential
	// with mean Min ("exp").
	Dist     string
	Min, Max time.Duration
	// MemMiB is what a memhog job holds, for Hold.
	MemMiB int
	Hold   time.Duration
}

// ParseShape reads "true", "sleep:100ms", "sleep:uniform:10ms:1s",
// "sleep:exp:200ms" or "memhog:200:2s" (MiB held for a duration).
func ParseShape(s string) (Shape, error) {
	parts := strings.Split(s, ":")
	bad := fmt.Errorf("shape %q: want true, sleep:D, sleep:uniform:D:D, sleep:exp:D or memhog:MiB:D", s)
	dur := func(v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, bad
		}
		return d, nil
	}
	var sh Shape
	var err error
	switch {
	case s == "true":
		return Shape{Kind: "true"}, nil
	case parts[0] == "sleep" && len(parts) == 2:
		sh = Shape{Kind: "sleep", Dist: "fixed"}
		sh.Min, err = dur(parts[1])
	case parts[0] == "sleep" && len(parts) == 4 && parts[1] == "uniform":
		sh = Shape{Kind: "sleep", Dist: "uniform"}
		if sh.Min, err = dur(parts[2]); err == nil {
			sh.Max, err = dur(parts[3])
		}
		if err == nil && sh.Max < sh.Min {
			err = bad
		}
	case parts[0] == "sleep" && len(parts) == 3 && parts[1] == "exp":
		sh = Shape{Kind: "sleep", Dist: "exp"}
		sh.Min, err = dur(parts[2])
	case parts[0] == "memhog" && len(parts) == 3:
		sh = Shape{Kind: "memhog"}
		if sh.MemMiB, err = strconv.Atoi(parts[1]); err != nil || sh.MemMiB <= 0 {
			return Shape{}, bad
		}
		sh.Hold, err = dur(parts[2])
	default:
		return Shape{}, bad
	}
	if err != nil {
		return Shape{}, err
	}
	return sh, nil
}

// work is the shell fragment of one job of this shape.
func (sh Shape) work(rnd *rand.Rand) string {
	switch sh.Kind {
	case "sleep":
		d := sh.Min
		switch sh.Dist {
		case "uniform":
			d = sh.Min + time.Duration(rnd.Int64N(int64(sh.Max-sh.Min)+1))
		case "exp":
			d = time.Duration(rnd.ExpFloat64() * float64(sh.Min))
			d = min(d, 20*sh.Min)
		}
		return fmt.Sprintf("sleep %.3f", d.Seconds())
	case "memhog":
		// Holds MemMiB in a shell variable for Hold.
		return fmt.Sprintf(`x=$(head -c %dM /dev/zero | tr '\0' a); sleep %.3f; : "${#x}"`, sh.MemMiB, sh.Hold.Seconds())
	default:
		return "true"
	}
}

// memory is the memory to request for a job of this shape, in MiB.
func (sh Shape) memory() int {
	if sh.Kind == "memhog" {
		return int(math.Ceil(float64(sh.MemMiB)*2.5)) + 16 // the shell holds copies while it builds x
	}
	return 0
}
