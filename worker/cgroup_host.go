package worker

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// cgroupHost is where this process sits in the host's cgroup hierarchies, as
// /proc/self/mountinfo and /proc/self/cgroup say when the process starts.
// It is read once per process: a v2 worker moves itself into a leaf cgroup
// (see prepareV2), which would change what /proc/self/cgroup says.
type cgroupHost struct {
	// v1Mount is the mount point of the v1 hierarchy with the memory
	// controller, and v1Memory the directory of this process's memory cgroup
	// in it; both "" without such a hierarchy.
	v1Mount, v1Memory string
	// v2Mount is the mount point of the unified (v2) hierarchy, and v2 the
	// directory of this process's cgroup in it; both "" without one.
	v2Mount, v2 string
}

var (
	hostOnce sync.Once
	host     cgroupHost
)

// hostCgroups returns where this process sits, read on first use.
func hostCgroups() cgroupHost {
	hostOnce.Do(func() {
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		cg, _ := os.ReadFile("/proc/self/cgroup")
		host = parseCgroupHost(string(mi), string(cg))
	})
	return host
}

// parseCgroupHost finds the memory cgroup of v1 and the cgroup of v2 from
// the text of /proc/self/mountinfo and /proc/self/cgroup.
func parseCgroupHost(mountinfo, cgroup string) cgroupHost {
	type mount struct{ root, point string }
	var v1, v2 *mount
	for _, line := range strings.Split(mountinfo, "\n") {
		// id parent major:minor root mount-point options [optional...] - fstype source super-options
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 {
			continue
		}
		m := &mount{root: unescapeMount(f[3]), point: unescapeMount(f[4])}
		switch {
		case g[0] == "cgroup2" && v2 == nil:
			v2 = m
		case g[0] == "cgroup" && len(g) >= 3 && v1 == nil && hasOption(g[2], "memory"):
			v1 = m
		}
	}
	var h cgroupHost
	for _, line := range strings.Split(cgroup, "\n") {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "" && v2 != nil:
			h.v2Mount, h.v2 = v2.point, within(v2.point, v2.root, parts[2])
		case v1 != nil && hasOption(parts[1], "memory"):
			h.v1Mount, h.v1Memory = v1.point, within(v1.point, v1.root, parts[2])
		}
	}
	return h
}

// within is the directory of cgroup path p in a hierarchy whose root is
// mounted at point. p is relative to the hierarchy's root; when the mount
// shows a subtree (root != "/"), p normally lies inside it.
func within(point, root, p string) string {
	if root != "/" {
		if rel, ok := strings.CutPrefix(p, root); ok && (rel == "" || rel[0] == '/') {
			p = rel
		}
	}
	// A v2 worker moves itself into a leaf of its cgroup (prepareV2); a
	// worker started again in that process tree uses the cgroup above it.
	if filepath.Base(p) == v2Leaf {
		p = filepath.Dir(p)
	}
	return filepath.Join(point, filepath.FromSlash(p))
}

func hasOption(list, opt string) bool {
	for _, o := range strings.Split(list, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 is a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// memoryLimitMiB is the lowest memory limit set on this process's cgroup or
// any cgroup above it (a container's limit), in MiB; 0 when none is set.
func (h cgroupHost) memoryLimitMiB() int {
	var lowest int64
	consider := func(b int64) {
		if b > 0 && b < 1<<60 && (lowest == 0 || b < lowest) {
			lowest = b
		}
	}
	walkUp(h.v1Mount, h.v1Memory, func(dir string) { consider(readInt(filepath.Join(dir, "memory.limit_in_bytes"))) })
	walkUp(h.v2Mount, h.v2, func(dir string) { consider(readInt(filepath.Join(dir, "memory.max"))) }) // "max" reads as 0
	return int(lowest >> 20)
}

// walkUp calls fn for dir and each directory above it up to mount.
func walkUp(mount, dir string, fn func(string)) {
	if mount == "" || dir == "" {
		return
	}
	for {
		fn(dir)
		if dir == mount || len(dir) <= len(mount) {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// readInt reads a file holding one integer; 0 when it cannot.
func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// readKeyed reads a "key value" line of a flat keyed file (memory.events,
// memory.oom_control, cgroup.events); 0 when absent.
func readKeyed(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
