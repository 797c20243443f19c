package worker

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestParseCgroupHost(t *testing.T) {
	cases := []struct {
		name              string
		mountinfo, cgroup string
		want              cgroupHost
	}{{
		name: "v1 memory hierarchy and an empty unified one (the development machines)",
		mountinfo: `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`,
		cgroup: `9:name=systemd:/
4:memory:/process_api/02ba65
1:cpu:/
0::/`,
		want: cgroupHost{v1Mount: "/sys/fs/cgroup/memory", v1Memory: "/sys/fs/cgroup/memory/process_api/02ba65",
			v2Mount: "/sys/fs/cgroup/unified", v2: "/sys/fs/cgroup/unified"},
	}, {
		name:      "v2 only, in a systemd service",
		mountinfo: `30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`,
		cgroup:    "0::/system.slice/jinn-worker.service\n",
		want:      cgroupHost{v2Mount: "/sys/fs/cgroup", v2: "/sys/fs/cgroup/system.slice/jinn-worker.service"},
	}, {
		name:      "v2, a worker that moved itself into its leaf earlier",
		mountinfo: `30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw`,
		cgroup:    "0::/system.slice/jinn.service/jinn-self\n",
		want:      cgroupHost{v2Mount: "/sys/fs/cgroup", v2: "/sys/fs/cgroup/system.slice/jinn.service"},
	}, {
		name: "v1 in a container: the mount shows the container's subtree",
		mountinfo: `700 690 0:40 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
701 690 0:41 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct`,
		cgroup: "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
		want:   cgroupHost{v1Mount: "/sys/fs/cgroup/memory", v1Memory: "/sys/fs/cgroup/memory"},
	}, {
		name:      "a mount point with a space",
		mountinfo: `35 31 0:32 / /mnt/cg\040mem rw - cgroup cgroup rw,memory`,
		cgroup:    "4:memory:/a\n",
		want:      cgroupHost{v1Mount: "/mnt/cg mem", v1Memory: "/mnt/cg mem/a"},
	}, {
		name: "no cgroups at all",
		want: cgroupHost{},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := parseCgroupHost(c.mountinfo, c.cgroup); got != c.want {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestMemoryLimitOfOwnCgroup(t *testing.T) {
	root := t.TempDir()
	mount := filepath.Join(root, "memory")
	own := filepath.Join(mount, "a", "b")
	if err := os.MkdirAll(own, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(dir, v string) {
		if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(mount, "9223372036854771712") // unlimited
	write(filepath.Join(mount, "a"), strconv.Itoa(3<<30))
	write(own, "9223372036854771712")
	h := cgroupHost{v1Mount: mount, v1Memory: own}
	if got := h.memoryLimitMiB(); got != 3072 {
		t.Fatalf("limit of a cgroup under a 3 GiB parent: %d MiB, want 3072", got)
	}
	v2 := filepath.Join(root, "unified", "svc")
	if err := os.MkdirAll(v2, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v2, "memory.max"), []byte("max\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := (cgroupHost{v2Mount: filepath.Dir(v2), v2: v2}).memoryLimitMiB(); got != 0 {
		t.Fatalf("memory.max of max: %d MiB, want 0 (no limit)", got)
	}
	if err := os.WriteFile(filepath.Join(v2, "memory.max"), []byte("1073741824\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := (cgroupHost{v2Mount: filepath.Dir(v2), v2: v2}).memoryLimitMiB(); got != 1024 {
		t.Fatalf("memory.max of 1 GiB: %d MiB", got)
	}
	if m := MachineMemory(); m <= 0 || DefaultAllowance() != m*8/10 {
		t.Fatalf("machine memory %d, default allowance %d", m, DefaultAllowance())
	}
}

// needHost skips a test that needs a feature of the host, except under
// CI=true, where the feature must be there (CI runs on the same kind of
// machine, as root).
func needHost(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but this host lacks %s", what)
	}
	t.Skipf("this host lacks %s (under CI=true this fails)", what)
}

// v1Enforcer returns the cgroup v1 enforcer of a worker named for the test.
func v1Enforcer(t *testing.T) *cgroupEnforcer {
	t.Helper()
	h := hostCgroups()
	needHost(t, h.v1Memory != "", "a cgroup v1 memory hierarchy")
	c, err := prepareV1(h, "test-"+strconv.Itoa(os.Getpid()), 20*time.Millisecond, hclog.NewNullLogger())
	needHost(t, err == nil, "a writable cgroup v1 memory hierarchy (run as root)")
	t.Cleanup(c.close)
	return c
}

// hog allocates and touches mib MiB, then sleeps.
func hog(mib int) *exec.Cmd {
	cmd := exec.Command("perl", "-e", `$x = "a" x (`+strconv.Itoa(mib)+` << 20); sleep 30`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func TestCgroupV1KillsAJobOverItsMemory(t *testing.T) {
	c := v1Enforcer(t)
	cmd := hog(300)
	lim, err := c.start("over", 50, cmd)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.parent, "over")
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the job was not killed: %v", err)
	}
	peak, over := lim.finish()
	if !over || peak < 45 || peak > 51 {
		t.Fatalf("over %v, peak %d MiB; want over and a peak of about 50", over, peak)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the job's cgroup is still there: %v", err)
	}
}

func TestCgroupV1JobWithinItsMemory(t *testing.T) {
	c := v1Enforcer(t)
	// The child reports its own cgroup: it must be born in the job's.
	cmd := exec.Command("perl", "-e", `$x = "a" x (20 << 20); open(F, "/proc/self/cgroup"); print <F>`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout = &out
	lim, err := c.start("within", 100, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	peak, over := lim.finish()
	if over || peak < 20 || peak > 100 {
		t.Fatalf("over %v, peak %d MiB; want not over, a peak of 20 to 100", over, peak)
	}
	want := strings.TrimPrefix(filepath.Join(c.parent, "within"), hostCgroups().v1Mount)
	if !strings.Contains(out.String(), ":memory:"+want+"\n") {
		t.Fatalf("the child ran in\n%s\nnot in %s", out.String(), want)
	}
	// Every thread of the worker is back in its own cgroup.
	ownRel := strings.TrimPrefix(c.own, hostCgroups().v1Mount)
	tasks, _ := filepath.Glob("/proc/self/task/*/cgroup")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && hasOption(parts[1], "memory") && parts[2] != ownRel {
				t.Fatalf("%s: a thread of the worker stayed in %s", f, parts[2])
			}
		}
	}
}

// A process that killed the kernel's choice survives in v1 (no oom.group):
// the worker ends the rest of the job, including a process that left the
// job's process group.
func TestCgroupV1EndsTheWholeJob(t *testing.T) {
	c := v1Enforcer(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command("sh", "-c", `setsid sleep 60 & echo $! > `+pidFile+`; perl -e '$x = "a" x (300 << 20)'; sleep 60`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	lim, err := c.start("whole", 50, cmd)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = cmd.Wait() // sh is killed once the OOM kill is seen, well before its sleep ends
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the job ran on for %s after the OOM kill", d)
	}
	b, _ := os.ReadFile(pidFile)
	escaped, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if _, over := lim.finish(); !over {
		t.Fatal("not reported over its memory")
	}
	if escaped <= 0 {
		t.Fatalf("no pid of the escaped process: %q", b)
	}
	if err := syscall.Kill(escaped, 0); err == nil {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(escaped) + "/stat"); !strings.Contains(string(st), ") Z ") {
			_ = syscall.Kill(escaped, syscall.SIGKILL)
			t.Fatal("a process of the job that left its group survived the job")
		}
	}
}

// The v2 start path: the child is born inside its cgroup (CLONE_INTO_CGROUP).
// It needs only a unified hierarchy, not its memory controller.
func TestCgroupV2BornInside(t *testing.T) {
	h := hostCgroups()
	needHost(t, h.v2 != "", "a cgroup v2 (unified) hierarchy")
	dir := filepath.Join(h.v2, "jinn-test-"+strconv.Itoa(os.Getpid()))
	err := os.Mkdir(dir, 0o755)
	needHost(t, err == nil, "a writable cgroup v2 hierarchy (run as root)")
	defer removeCgroup(dir)
	cmd := exec.Command("cat", "/proc/self/cgroup")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := startInCgroupV2(dir, cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	want := "0::" + strings.TrimPrefix(dir, h.v2Mount) + "\n"
	if !strings.Contains(out.String(), want) {
		t.Fatalf("the child ran in\n%s\nwant the line %q", out.String(), want)
	}
}

// The whole v2 enforcement runs where v2 has the memory controller. The
// development and CI machines have none in v2, so it is skipped there.
func TestCgroupV2KillsAJobOverItsMemory(t *testing.T) {
	h := hostCgroups()
	c, err := prepareV2(h, "test-"+strconv.Itoa(os.Getpid()), 20*time.Millisecond, hclog.NewNullLogger())
	if err != nil {
		t.Skipf("no cgroup v2 memory controller for this worker (none on the development and CI machines): %v", err)
	}
	defer c.close()
	cmd := hog(300)
	lim, err := c.start("over", 50, cmd)
	if err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	peak, over := lim.finish()
	if !over || peak < 45 {
		t.Fatalf("over %v, peak %d MiB", over, peak)
	}
}

func TestEnforcerChoice(t *testing.T) {
	log := hclog.NewNullLogger()
	if _, err := newEnforcer("bogus", "w", time.Second, log); err == nil || !strings.Contains(err.Error(), "auto, cgroup, watchdog, off") {
		t.Fatalf("a bad mode: %v", err)
	}
	for mode, kind := range map[string]string{EnforceOff: "off", EnforceWatchdog: "watchdog"} {
		e, err := newEnforcer(mode, "w", time.Second, log)
		if err != nil || e.kind() != kind {
			t.Fatalf("%s: %v %v", mode, e, err)
		}
		e.close()
	}
	h := hostCgroups()
	_, v1err := os.Stat(h.v1Memory)
	needHost(t, h.v1Memory != "" && v1err == nil && os.Geteuid() == 0, "a writable cgroup hierarchy")
	e, err := newEnforcer(EnforceAuto, "test-choice-"+strconv.Itoa(os.Getpid()), time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	if k := e.kind(); k != "cgroup-v2" && k != "cgroup-v1" {
		t.Fatalf("auto chose %s on a host with cgroups", k)
	}
}

// A worker removes what a worker of a dead process left in its cgroup, and
// kills the jobs still running there; it leaves a live process's alone.
func TestCgroupV1SweepsWhatADeadWorkerLeft(t *testing.T) {
	h := hostCgroups()
	needHost(t, h.v1Memory != "", "a cgroup v1 memory hierarchy")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(h.v1Memory, "jinn-"+strconv.Itoa(dead.Process.Pid)+"-1-crashed")
	live := filepath.Join(h.v1Memory, "jinn-"+strconv.Itoa(os.Getpid())+"-999-alive")
	for _, d := range []string{filepath.Join(stale, "job-1"), live} {
		err := os.MkdirAll(d, 0o755)
		needHost(t, err == nil, "a writable cgroup v1 memory hierarchy (run as root)")
	}
	defer removeCgroup(live)
	orphan := exec.Command("sleep", "60")
	if err := startInCgroupV1(filepath.Join(stale, "job-1", "tasks"), filepath.Join(h.v1Memory, "tasks"), orphan); err != nil {
		t.Fatal(err)
	}
	c := v1Enforcer(t)
	if err := orphan.Wait(); err == nil {
		t.Fatal("the orphaned job was not killed")
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the dead worker's cgroup is still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("a live worker's cgroup was removed: %v", err)
	}
	if !strings.HasPrefix(filepath.Base(c.parent), "jinn-"+strconv.Itoa(os.Getpid())+"-") {
		t.Fatalf("parent %s", c.parent)
	}
}

// The heartbeat's measured use: what the worker's jobs hold now.
func TestCgroupV1Used(t *testing.T) {
	c := v1Enforcer(t)
	cmd := exec.Command("perl", "-e", `$| = 1; $x = "a" x (30 << 20); print "ready\n"; <STDIN>`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	lim, err := c.start("used", 100, cmd)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := stdout.Read(buf); err != nil { // the 30 MiB are in place
		t.Fatal(err)
	}
	if u := c.used(); u < 30 || u > 100 {
		t.Errorf("used %d MiB while the job holds 30", u)
	}
	stdin.Close()
	_ = cmd.Wait()
	lim.finish()
	if u := c.used(); u > 5 {
		t.Errorf("used %d MiB after the job ended", u)
	}
}
