package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// gcCount is how many garbage collections p has run, from the
// go_gc_duration_seconds_count of its /metrics; -1 when p has no metrics
// (the floor, oauth2-proxy) or they cannot be read.
func gcCount(p *proc) int64 {
	if p == nil || p.metricsURL == "" {
		return -1
	}
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(p.metricsURL)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_gc_duration_seconds_count "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return int64(n)
		}
	}
	return -1
}

// gcNote says how often ours collected garbage during a run, for the log.
func gcNote(s sample) string {
	if s.ServerGCs < 0 || s.Elapsed <= 0 {
		return ""
	}
	return fmt.Sprintf("server GCs %d (%.1f/s)", s.ServerGCs, float64(s.ServerGCs)/s.Elapsed.Seconds())
}
