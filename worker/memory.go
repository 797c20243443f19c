package worker

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// DefaultAllowance is 80% of the machine's memory in MiB, as Genie gave jobs.
func DefaultAllowance() int {
	return MachineMemory() * 8 / 10
}

// MachineMemory is the memory this worker can use, in MiB: the machine's,
// or the memory limit of the worker's own cgroup (its container) when that
// is lower. 1280 when neither can be read, so that the default allowance is
// 1024.
func MachineMemory() int {
	total := machineMemoryMiB()
	if lim := hostCgroups().memoryLimitMiB(); lim > 0 && (total <= 0 || lim < total) {
		total = lim
	}
	if total <= 0 {
		return 1280
	}
	return total
}

// machineMemoryMiB reads MemTotal from /proc/meminfo.
func machineMemoryMiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.Atoi(fields[1])
			return kb / 1024
		}
	}
	return 0
}
