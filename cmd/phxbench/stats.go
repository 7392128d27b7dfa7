package main

import (
	"bufio"
	"fmt"
	"math"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// hist is a log-linear histogram of durations in microseconds, safe for
// concurrent use: values below 128 µs are exact, larger ones fall in
// buckets 1/64 of their power of two wide (under 1.6% error). It holds
// any number of samples in fixed memory (about 30 KiB).
type hist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // µs
	max    atomic.Uint64 // µs
	min    atomic.Uint64 // µs + 1, 0 when empty
}

const (
	histLinear  = 128 // exact buckets
	histSub     = 64  // buckets per power of two above
	histBuckets = histLinear + (64-7)*histSub
)

func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	k := bits.Len64(v) - 1 // v in [2^k, 2^(k+1)), k >= 7
	shift := k - 6         // v>>shift in [64, 128)
	return histLinear + (k-7)*histSub + int(v>>shift) - histSub
}

// histValue is the middle of bucket i, in µs.
func histValue(i int) float64 {
	if i < histLinear {
		return float64(i)
	}
	j := i - histLinear
	k := j/histSub + 7
	shift := k - 6
	lo := uint64(j%histSub+histSub) << shift
	return float64(lo) + float64(uint64(1)<<shift-1)/2
}

func (h *hist) record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d / time.Microsecond)
	}
	h.counts[histIndex(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && v+1 >= m) || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
}

func (h *hist) count() uint64 { return h.n.Load() }

// quantile returns the q-quantile (0 < q <= 1) in µs: the value of the
// sample of rank ceil(q*n) (nearest rank), as its bucket's middle, clamped
// to the exact min and max.
func (h *hist) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := histValue(i)
			if mx := float64(h.max.Load()); v > mx {
				v = mx
			}
			if mn := float64(h.min.Load() - 1); v < mn {
				v = mn
			}
			return v
		}
	}
	return float64(h.max.Load())
}

// latency is the summary of a hist, in milliseconds, for the report.
type latency struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *hist) summary() latency {
	n := h.n.Load()
	if n == 0 {
		return latency{}
	}
	ms := func(us float64) float64 { return math.Round(us) / 1000 }
	return latency{
		Count: n,
		Min:   ms(float64(h.min.Load() - 1)),
		Mean:  ms(float64(h.sum.Load()) / float64(n)),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(float64(h.max.Load())),
	}
}

func (l latency) String() string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (n=%d)", l.P50, l.P90, l.P99, l.Max, l.Count)
}

// exactQuantile is the nearest-rank q-quantile of sorted values; the
// reference the histogram is tested against.
func exactQuantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	if !sort.Float64sAreSorted(sorted) {
		panic("exactQuantile: not sorted")
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// memInfo is what /proc/<pid>/status says of a process's memory.
type memInfo struct {
	RSSKiB     int64 `json:"rss_kib"`
	HWMKiB     int64 `json:"hwm_kib"` // peak RSS
	Threads    int64 `json:"threads"`
	FDs        int   `json:"fds,omitempty"`
	Unreadable bool  `json:"-"`
}

// readMem reads VmRSS, VmHWM and Threads of pid.
func readMem(pid int) (memInfo, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memInfo{}, err
	}
	defer f.Close()
	mi, err := parseStatus(f)
	if err != nil {
		return mi, err
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		mi.FDs = len(ents)
	}
	return mi, nil
}

func parseStatus(r interface{ Read([]byte) (int, error) }) (memInfo, error) {
	var mi memInfo
	sc := bufio.NewScanner(r)
	found := false
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			mi.RSSKiB, found = n, true
		case "VmHWM":
			mi.HWMKiB = n
		case "Threads":
			mi.Threads = n
		}
	}
	if err := sc.Err(); err != nil {
		return mi, err
	}
	if !found {
		return mi, fmt.Errorf("no VmRSS in status")
	}
	return mi, nil
}

// round2 rounds to 2 decimals for the report.
func round2(f float64) float64 { return math.Round(f*100) / 100 }
