package main

import (
	"fmt"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotGRPC draws, for each gRPC workload, the latency distribution of ours
// and of the floor at the fixed rate (issue 19): latency against percentile
// on a "nines" axis (p90, p99, p99.9, ... equally spaced), each point the
// median over rounds, so where the tails part is visible at a glance.
func (r *Results) plotGRPC(path string) error {
	var plots [][]*plot.Plot
	for _, g := range r.GRPC {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("gRPC Check latency, %s, at %s (median of %d rounds)", g.Name, fmtRate(g.Rate), r.Cfg.Rounds)
		p.X.Label.Text = "percentile"
		p.Y.Label.Text = "ms (log scale)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks125{}
		p.X.Tick.Marker = ninesTicks{}
		p.Add(plotter.NewGrid())
		series := 0
		for i, s := range []*serverRuns{g.Ours, g.Noop} {
			pts := make(plotter.XYs, 0, len(spectrumQuantiles))
			for j, q := range spectrumQuantiles {
				v := medianD(s.Fixed, func(x sample) time.Duration {
					if j < len(x.Spectrum) {
						return x.Spectrum[j]
					}
					return 0
				})
				if v <= 0 {
					continue
				}
				pts = append(pts, plotter.XY{X: nines(q), Y: float64(v) / 1e6})
			}
			if len(pts) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
			line.Width = vg.Points(1.5)
			p.Add(line, points)
			p.Legend.Add(s.Name, line, points)
			series++
		}
		if series == 0 {
			continue // no distribution kept (a report rebuilt from old numbers)
		}
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.XOffs = vg.Points(8)
		plots = append(plots, []*plot.Plot{p})
	}
	if len(plots) == 0 {
		return nil
	}
	return writeColumn(path, plots, 3.5*vg.Inch)
}

// nines places quantile q on the percentile axis: -log10(1-q), so p90 is
// 1, p99 2, p99.9 3.
func nines(q float64) float64 { return -math.Log10(1 - q) }

// ninesTicks labels p50, p90, p99, p99.9 and p99.99.
type ninesTicks struct{}

func (ninesTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for _, t := range []struct {
		q     float64
		label string
	}{{0.5, "p50"}, {0.9, "p90"}, {0.99, "p99"}, {0.999, "p99.9"}, {0.9999, "p99.99"}} {
		if x := nines(t.q); x >= min-1e-9 && x <= max+1e-9 {
			ticks = append(ticks, plot.Tick{Value: x, Label: t.label})
		}
	}
	return ticks
}
