package store

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/jinn-fleet/jinn/internal/metrics"
)

// ErrorHook is a go-redis hook that counts failed commands in
// jinn_redis_errors_total. A missing key (redis.Nil) is an answer, not an
// error, and NOSCRIPT is go-redis loading a script on first use; neither
// counts. Add it with rdb.AddHook(store.ErrorHook{}).
type ErrorHook struct{}

var _ redis.Hook = ErrorHook{}

// DialHook counts failed connections as command "dial".
func (ErrorHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			metrics.RedisError("dial")
		}
		return c, err
	}
}

// ProcessHook counts a failed command by its name.
func (ErrorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if countable(err) {
			metrics.RedisError(strings.ToLower(cmd.Name()))
		}
		return err
	}
}

// ProcessPipelineHook counts a failed pipeline or transaction once.
func (ErrorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if countable(err) {
			metrics.RedisError("pipeline")
		}
		return err
	}
}

func countable(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil) && !strings.HasPrefix(err.Error(), "NOSCRIPT")
}
