package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// summarize prints, after -repeat runs, the median of each figure over the
// runs and the median of its ratio to the floor, each ratio taken within
// one run (the servers of a run share its load; runs do not).
func summarize(w io.Writer, o *options, runs [][]measurement) {
	type figure struct {
		name string
		get  func(*loadResult) float64
	}
	kib := figure{"KiB per connection", func(r *loadResult) float64 {
		if r == nil || r.Server == nil {
			return 0
		}
		return r.Server.PerConnKiB
	}}
	joins := figure{"joins took s", func(r *loadResult) float64 {
		if r == nil || r.Connect == nil {
			return 0
		}
		return r.Connect.DurationS
	}}
	p99 := figure{"fan-out p99 ms", func(r *loadResult) float64 {
		if r == nil || r.Fanout == nil {
			return 0
		}
		return r.Fanout.Latency.P99
	}}
	type scenario struct {
		name    string
		sizes   []int
		rate    float64
		figures []figure
		only    map[string]bool // targets measured in it; nil: all
	}
	scenarios := []scenario{
		{"idle", o.idle, 0, []figure{kib}, nil},
		{"presence", o.presence, 0, []figure{kib}, presenceTargets},
		{"bigroom", o.bigroom, o.bigRate, []figure{kib, joins, p99}, presenceTargets},
	}
	deliveries := figure{"deliveries/s", func(r *loadResult) float64 {
		if r == nil || r.Fanout == nil {
			return 0
		}
		return r.Fanout.DeliveriesPerS
	}}
	for _, fr := range fanoutRuns(o) {
		scenarios = append(scenarios, scenario{"fanout", []int{fr.size}, fr.rate, []figure{deliveries, p99}, nil})
	}
	fmt.Fprintf(w, "\n## Medians of %d runs\n\nEach cell: the median, then every run's figure in order; ratios are taken within each run.\n", len(runs))
	for _, sc := range scenarios {
		for _, size := range sc.sizes {
			title := fmt.Sprintf("%s, %d", sc.name, size)
			if sc.name == "fanout" {
				title += fmt.Sprintf(" at %g/s", sc.rate)
			}
			fmt.Fprintf(w, "\n### %s\n\n| server | figure | median | runs | vs floor, median | vs floor, runs |\n|---|---|---|---|---|---|\n", title)
			for _, t := range o.targets {
				if sc.only != nil && !sc.only[t] {
					continue
				}
				for _, f := range sc.figures {
					var vals, ratios []float64
					for _, run := range runs {
						v := f.get(resultOf(run, t, sc.name, size, sc.rate))
						vals = append(vals, v)
						if fl := f.get(resultOf(run, "floor", sc.name, size, sc.rate)); t != "floor" && v > 0 && fl > 0 {
							ratios = append(ratios, v/fl)
						}
					}
					row := fmt.Sprintf("| %s | %s | %.1f | %s |", t, f.name, median(vals), list(vals, "%.1f"))
					if len(ratios) > 0 {
						row += fmt.Sprintf(" %.2f× | %s |", median(ratios), list(ratios, "%.2f×"))
					} else {
						row += " | |"
					}
					fmt.Fprintln(w, row)
				}
			}
		}
	}
}

// resultOf returns the result of target in one run's measurements; nil
// when it failed or is missing.
func resultOf(run []measurement, target, scenario string, size int, rate float64) *loadResult {
	for _, x := range run {
		if x.Target == target && x.Scenario == scenario && x.Size == size && x.Rate == rate {
			return x.parsed
		}
	}
	return nil
}

// median of vs, ignoring zeros (failed runs); 0 when none is left.
func median(vs []float64) float64 {
	var ok []float64
	for _, v := range vs {
		if v > 0 {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return 0
	}
	slices.Sort(ok)
	if n := len(ok); n%2 == 0 {
		return (ok[n/2-1] + ok[n/2]) / 2
	}
	return ok[len(ok)/2]
}

func list(vs []float64, format string) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = "–"
		if v > 0 {
			parts[i] = fmt.Sprintf(format, v)
		}
	}
	return strings.Join(parts, ", ")
}
