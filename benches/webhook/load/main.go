// Load for the onus webhook alone: POST one AdmissionReview over HTTPS keep-alive, either at a
// fixed rate (open loop: each request is handed to a free connection when due and its latency
// counts from then, waiting for a connection included, so a slow server cannot hide its queue)
// or saturated (closed loop, N workers back to back).
//
//	load -url https://127.0.0.1:8443/validate -ca tls.crt -body review.json -rate 5000 -duration 20s
//	load ... -rate 0 -conns 64        (saturated)
//
// Prints one line: mode, offered and achieved rate, p50/p90/p99/p99.9/max in ms, errors.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "webhook URL")
	caFile := flag.String("ca", "", "CA bundle (PEM) to trust")
	bodyFile := flag.String("body", "", "AdmissionReview JSON to send")
	rate := flag.Int("rate", 0, "requests per second; 0 = saturated")
	conns := flag.Int("conns", 64, "connections (workers)")
	duration := flag.Duration("duration", 20*time.Second, "measured time")
	warmup := flag.Duration("warmup", 3*time.Second, "unmeasured time first")
	flag.Parse()
	if *url == "" || *caFile == "" || *bodyFile == "" {
		fmt.Fprintln(os.Stderr, "usage: load -url URL -ca CA.pem -body review.json [-rate N] [-conns N] [-duration D]")
		os.Exit(2)
	}
	body, err := os.ReadFile(*bodyFile)
	check(err)
	pem, err := os.ReadFile(*caFile)
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		check(fmt.Errorf("%s holds no certificate", *caFile))
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool},
			MaxIdleConns:        *conns,
			MaxIdleConnsPerHost: *conns,
			MaxConnsPerHost:     *conns,
			ForceAttemptHTTP2:   false,
		},
	}
	send := func() bool {
		resp, err := client.Post(*url, "application/json", bytes.NewReader(body))
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200
	}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		errors    atomic.Int64
		measuring atomic.Bool
	)
	record := func(d time.Duration, ok bool) {
		if !measuring.Load() {
			return
		}
		if !ok {
			errors.Add(1)
		}
		mu.Lock()
		latencies = append(latencies, d)
		mu.Unlock()
	}
	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*duration)
	var wg sync.WaitGroup
	if *rate <= 0 {
		for w := 0; w < *conns; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					t := time.Now()
					ok := send()
					record(time.Since(t), ok)
				}
			}()
		}
	} else {
		due := make(chan time.Time, 1<<20)
		for w := 0; w < *conns; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for at := range due {
					ok := send()
					record(time.Since(at), ok)
				}
			}()
		}
		interval := time.Second / time.Duration(*rate)
		go func() {
			defer close(due)
			for i := 0; ; i++ {
				at := start.Add(time.Duration(i) * interval)
				if !at.Before(end) {
					return
				}
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				// Latency counts from when the request was due or, if this loop woke late
				// (timer granularity), from when it was handed on: the waiting for a free
				// connection is the server's, the sleeping of this loop is not.
				if now := time.Now(); now.After(at) {
					at = now
				}
				due <- at
			}
		}()
	}
	time.Sleep(time.Until(measureFrom))
	measuring.Store(true)
	time.Sleep(time.Until(end))
	measuring.Store(false)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	q := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	mode := "saturated"
	if *rate > 0 {
		mode = fmt.Sprintf("%d/s", *rate)
	}
	fmt.Printf("%-10s conns=%-3d achieved=%8.0f/s  p50=%6.2f ms  p90=%6.2f ms  p99=%6.2f ms  p99.9=%7.2f ms  max=%7.2f ms  errors=%d\n",
		mode, *conns, float64(len(latencies))/duration.Seconds(), q(0.50), q(0.90), q(0.99), q(0.999), q(1), errors.Load())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
}
