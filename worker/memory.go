package worker

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// DefaultAllowance is 80% of the machine's memory in MiB, as Genie gave jobs.
func DefaultAllowance() int {
	total := machineMemoryMiB()
	if total <= 0 {
		return 1024
	}
	return total * 8 / 10
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
