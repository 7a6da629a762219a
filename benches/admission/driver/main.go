// Load driver for the admission benchmark (benches/admission/run.sh). Standard library only.
//
//	driver verify -kubeconfig K -ns NS -expect allow|deny [-timeout 90s]
//	    sends the passing Deployment and every failing variant (dry-run) until each one gets
//	    the expected answer (pass: allowed; failing: allowed under `allow`, denied under
//	    `deny`); exits 1 with the answers seen when that does not happen in time.
//	driver run -kubeconfig K -ns NS -setup S -round N -rate R|-workers W -duration D ...
//	    one measured run: open loop at R creates/s (R > 0; latency from the scheduled send
//	    time, so a slow server is not hidden by coordinated omission) or closed loop with W
//	    workers (R = 0). Appends one JSON line to -out; scrapes the API server's /metrics
//	    before and after the measured window (the warm-up is outside it). Exits 3 when a
//	    passing Deployment was denied, or a failing one got the wrong answer.
//	driver report [-floor floor] FILE.jsonl
//	    prints the table (median over rounds per setup and load; added latency over floor).
//	driver body [-ns NS] [-variant NAME]
//	    prints the passing Deployment, or a failing variant (to try with kubectl).
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: driver verify|run|report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "verify":
		err = cmdVerify(os.Args[2:])
	case "run":
		err = cmdRun(os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	case "body":
		err = cmdBody(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(int(ec))
		}
		os.Exit(1)
	}
}

type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// ------------------------------------------------------------------------------ kubeconfig

type kubeconfig struct {
	server                  string
	ca, cert, key           []byte
	token                   string
	insecure                bool
	caFile, certFile, keyFp string
}

// Reads the first cluster and user of a kubeconfig as hack/controlplane writes it (one
// cluster, one user; `key: value` lines). Inline *-data and file paths are both understood.
func readKubeconfig(path string) (*kubeconfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kc := &kubeconfig{}
	set := func(dst *[]byte, v string) error {
		if len(*dst) > 0 {
			return nil
		}
		b, err := base64.StdEncoding.DecodeString(v)
		*dst = b
		return err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		switch strings.TrimSpace(k) {
		case "server":
			if kc.server == "" {
				kc.server = v
			}
		case "certificate-authority-data":
			err = set(&kc.ca, v)
		case "client-certificate-data":
			err = set(&kc.cert, v)
		case "client-key-data":
			err = set(&kc.key, v)
		case "certificate-authority":
			kc.caFile = v
		case "client-certificate":
			kc.certFile = v
		case "client-key":
			kc.keyFp = v
		case "token":
			if kc.token == "" {
				kc.token = v
			}
		case "insecure-skip-tls-verify":
			kc.insecure = v == "true"
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, k, err)
		}
	}
	load := func(dst *[]byte, f string) error {
		if len(*dst) > 0 || f == "" {
			return nil
		}
		b, err := os.ReadFile(f)
		*dst = b
		return err
	}
	for _, p := range []struct {
		d *[]byte
		f string
	}{{&kc.ca, kc.caFile}, {&kc.cert, kc.certFile}, {&kc.key, kc.keyFp}} {
		if err := load(p.d, p.f); err != nil {
			return nil, err
		}
	}
	if kc.server == "" {
		return nil, fmt.Errorf("%s: no server", path)
	}
	return kc, nil
}

type client struct {
	http   *http.Client
	server string
	token  string
}

func newClient(path string, conns int, h2 bool) (*client, error) {
	kc, err := readKubeconfig(path)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{InsecureSkipVerify: kc.insecure}
	if len(kc.ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(kc.ca) {
			return nil, errors.New("kubeconfig: bad certificate authority")
		}
		tc.RootCAs = pool
	}
	if len(kc.cert) > 0 {
		pair, err := tls.X509KeyPair(kc.cert, kc.key)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		MaxIdleConns:        conns + 8,
		MaxIdleConnsPerHost: conns + 8,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   h2,
		DisableCompression:  true,
	}
	if !h2 {
		// HTTP/1.1 with keep-alive: one connection per in-flight request, reused.
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &client{
		http:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		server: strings.TrimRight(kc.server, "/"),
		token:  kc.token,
	}, nil
}

func (c *client) do(method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.server+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// ------------------------------------------------------------------------------ workload

const digest = "sha256:4b7e1c9d2a3f5e6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b"
const registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/"

type obj = map[string]any

// A realistic Deployment that every setup allows: two containers pinned by digest from the
// allowed ECR registry, non-root, capabilities dropped, secrets by reference.
func passing(ns string) obj {
	return obj{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata": obj{
			"name": "orders", "namespace": ns,
			"labels": obj{"app": "orders", "team": "commerce"},
		},
		"spec": obj{
			"replicas": 3,
			"selector": obj{"matchLabels": obj{"app": "orders"}},
			"strategy": obj{"type": "RollingUpdate",
				"rollingUpdate": obj{"maxSurge": "25%", "maxUnavailable": 0}},
			"template": obj{
				"metadata": obj{"labels": obj{"app": "orders"}},
				"spec": obj{
					"serviceAccountName": "orders",
					"securityContext": obj{"runAsNonRoot": true,
						"seccompProfile": obj{"type": "RuntimeDefault"}},
					"volumes": []any{obj{"name": "tmp", "emptyDir": obj{}}},
					"containers": []any{
						obj{
							"name":  "orders",
							"image": registry + "orders@" + digest,
							"ports": []any{obj{"containerPort": 8080, "name": "http"}},
							"env": []any{
								obj{"name": "INVOICE_BUCKET", "value": "s3://shop-invoices/2026/"},
								obj{"name": "LOG_LEVEL", "value": "info"},
								obj{"name": "DB_PASSWORD", "valueFrom": obj{"secretKeyRef": obj{"name": "orders-db", "key": "password"}}},
							},
							"resources": obj{
								"requests": obj{"cpu": "250m", "memory": "256Mi"},
								"limits":   obj{"memory": "512Mi"},
							},
							"readinessProbe": obj{"httpGet": obj{"path": "/ready", "port": "http"}},
							"volumeMounts":   []any{obj{"name": "tmp", "mountPath": "/tmp"}},
							"securityContext": obj{
								"allowPrivilegeEscalation": false,
								"readOnlyRootFilesystem":   true,
								"capabilities":             obj{"drop": []any{"ALL"}},
							},
						},
						obj{
							"name":  "proxy",
							"image": registry + "proxy@" + digest,
							"ports": []any{obj{"containerPort": 15001}},
							"securityContext": obj{
								"capabilities": obj{"add": []any{"NET_BIND_SERVICE"}, "drop": []any{"ALL"}},
							},
						},
					},
				},
			},
		},
	}
}

func pod(d obj) obj       { return d["spec"].(obj)["template"].(obj)["spec"].(obj) }
func container(d obj) obj { return pod(d)["containers"].([]any)[0].(obj) }
func sc(d obj) obj        { return container(d)["securityContext"].(obj) }

// One failing variant per check: each breaks exactly one rule of the policy.
var variants = []struct {
	name string
	edit func(obj)
}{
	{"privileged", func(d obj) { s := sc(d); delete(s, "allowPrivilegeEscalation"); s["privileged"] = true }},
	{"hostNetwork", func(d obj) { pod(d)["hostNetwork"] = true }},
	{"hostPID", func(d obj) { pod(d)["hostPID"] = true }},
	{"hostIPC", func(d obj) { pod(d)["hostIPC"] = true }},
	{"hostPath", func(d obj) {
		p := pod(d)
		p["volumes"] = append(p["volumes"].([]any), obj{"name": "host", "hostPath": obj{"path": "/var/run"}})
		c := container(d)
		c["volumeMounts"] = append(c["volumeMounts"].([]any), obj{"name": "host", "mountPath": "/host"})
	}},
	{"hostPort", func(d obj) {
		container(d)["ports"] = []any{obj{"containerPort": 8080, "hostPort": 8080, "name": "http"}}
	}},
	{"cap-SYS_ADMIN", func(d obj) { sc(d)["capabilities"] = obj{"add": []any{"SYS_ADMIN"}} }},
	{"cap-NET_RAW", func(d obj) { sc(d)["capabilities"] = obj{"add": []any{"NET_RAW"}} }},
	{"image-tag", func(d obj) { container(d)["image"] = registry + "orders:1.4.2" }},
	{"image-registry", func(d obj) { container(d)["image"] = "docker.io/library/nginx@" + digest }},
	{"env-AWS_SECRET_ACCESS_KEY", func(d obj) {
		c := container(d)
		c["env"] = append(c["env"].([]any), obj{"name": "AWS_SECRET_ACCESS_KEY", "value": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
	}},
	{"env-value-AKIA", func(d obj) {
		c := container(d)
		c["env"] = append(c["env"].([]any), obj{"name": "S3_KEY", "value": "AKIAIOSFODNN7EXAMPLE"})
	}},
	{"env-secretKeyRef-key", func(d obj) {
		c := container(d)
		c["env"] = append(c["env"].([]any), obj{"name": "S3_SECRET",
			"valueFrom": obj{"secretKeyRef": obj{"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"}}})
	}},
	{"env-GOOGLE_APPLICATION_CREDENTIALS", func(d obj) {
		c := container(d)
		c["env"] = append(c["env"].([]any), obj{"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/secrets/key.json"})
	}},
}

type bodies struct {
	pass  []byte
	fails [][]byte
}

func makeBodies(ns string) bodies {
	var b bodies
	b.pass, _ = json.Marshal(passing(ns))
	for _, v := range variants {
		d := passing(ns)
		v.edit(d)
		j, _ := json.Marshal(d)
		b.fails = append(b.fails, j)
	}
	return b
}

func createPath(ns string) string {
	return "/apis/apps/v1/namespaces/" + ns + "/deployments?dryRun=All"
}

// `driver body -ns NS [-variant NAME]`: prints a body (to try it with kubectl).
func cmdBody(args []string) error {
	fs := flag.NewFlagSet("body", flag.ExitOnError)
	ns := fs.String("ns", "shop", "namespace")
	v := fs.String("variant", "", "failing variant (empty: the passing Deployment)")
	fs.Parse(args)
	b := makeBodies(*ns)
	if *v == "" {
		os.Stdout.Write(b.pass)
		return nil
	}
	for i, x := range variants {
		if x.name == *v {
			os.Stdout.Write(b.fails[i])
			return nil
		}
	}
	return fmt.Errorf("no variant %q", *v)
}

// allowed / denied / error, from a status code.
func classify(code int, err error) string {
	switch {
	case err != nil:
		return "error"
	case code >= 200 && code < 300:
		return "allowed"
	case code == 400 || code == 403 || code == 422:
		return "denied"
	default:
		return "error"
	}
}

func message(b []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &st) == nil && st.Message != "" {
		b = []byte(st.Message)
	}
	s := strings.ReplaceAll(string(b), "\n", " ")
	if len(s) > 200 {
		s = s[:90] + " ... " + s[len(s)-105:]
	}
	return s
}

// ------------------------------------------------------------------------------ verify

func cmdVerify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	kcPath := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig")
	ns := fs.String("ns", "shop", "namespace")
	expect := fs.String("expect", "deny", "allow|deny: the expected answer to failing Deployments")
	timeout := fs.Duration("timeout", 90*time.Second, "how long to wait for the expected answers")
	quiet := fs.Bool("q", false, "print only on failure")
	fs.Parse(args)
	c, err := newClient(*kcPath, 2, false)
	if err != nil {
		return err
	}
	b := makeBodies(*ns)
	want := "denied"
	if *expect == "allow" {
		want = "allowed"
	}
	deadline := time.Now().Add(*timeout)
	for {
		var lines []string
		ok := true
		check := func(name string, body []byte, want string) {
			code, rb, err := c.do("POST", createPath(*ns), body)
			got := classify(code, err)
			detail := ""
			if err != nil {
				detail = err.Error()
			} else if got != "allowed" {
				detail = message(rb)
			}
			mark := "ok "
			if got != want {
				mark, ok = "BAD", false
			}
			lines = append(lines, fmt.Sprintf("  %s %-40s %3d %-8s (want %s) %s", mark, name, code, got, want, detail))
		}
		check("pass", b.pass, "allowed")
		for i, v := range variants {
			check("fail/"+v.name, b.fails[i], want)
		}
		if ok {
			if !*quiet {
				fmt.Println(strings.Join(lines, "\n"))
			}
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, strings.Join(lines, "\n"))
			return fmt.Errorf("verify: answers not as expected (%s) after %s", *expect, *timeout)
		}
		time.Sleep(time.Second)
	}
}

// ------------------------------------------------------------------------------ run

type sample struct {
	lat     time.Duration
	fail    bool // a failing Deployment was sent
	outcome string
	code    int
	msg     string // errors only
}

type Result struct {
	Setup       string             `json:"setup"`
	Round       int                `json:"round"`
	Load        string             `json:"load"`
	Rate        int                `json:"rate"`
	Workers     int                `json:"workers"`
	DurationS   float64            `json:"duration_s"`
	Scheduled   int                `json:"scheduled"`
	Completed   int                `json:"completed"`
	Throughput  float64            `json:"throughput"`
	P50         float64            `json:"p50_ms"`
	P90         float64            `json:"p90_ms"`
	P99         float64            `json:"p99_ms"`
	Max         float64            `json:"max_ms"`
	Pass        map[string]int     `json:"pass"`
	Fail        map[string]int     `json:"fail"`
	Codes       map[string]int     `json:"codes"`
	Errors      int                `json:"errors"`
	Wrong       int                `json:"wrong"`
	Metrics     map[string]float64 `json:"metrics"`
	FirstErrors []string           `json:"first_errors,omitempty"`
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	kcPath := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig")
	ns := fs.String("ns", "shop", "namespace")
	setup := fs.String("setup", "", "setup name (floor, vap, kyverno, onus)")
	round := fs.Int("round", 0, "round number")
	rate := fs.Int("rate", 0, "open loop: creates per second; 0 = closed loop with -workers")
	workers := fs.Int("workers", 16, "closed loop: concurrent workers; open loop: most requests in flight")
	dur := fs.Duration("duration", 20*time.Second, "measured duration")
	warm := fs.Duration("warmup", 3*time.Second, "warm-up before the measured window (discarded)")
	failPct := fs.Int("fail-pct", 10, "percentage of failing Deployments")
	expect := fs.String("expect", "deny", "allow|deny: the expected answer to failing Deployments")
	h2 := fs.Bool("h2", false, "HTTP/2 (one multiplexed connection) instead of HTTP/1.1 keep-alive")
	out := fs.String("out", "", "append the JSON result to this file (default stdout)")
	fs.Parse(args)
	if *setup == "" {
		return errors.New("-setup is required")
	}
	c, err := newClient(*kcPath, *workers, *h2)
	if err != nil {
		return err
	}
	b := makeBodies(*ns)
	path := createPath(*ns)

	if *warm > 0 {
		phase(c, path, b, *rate, *workers, *warm, *failPct)
	}
	before, err := scrape(c)
	if err != nil {
		return fmt.Errorf("scrape /metrics: %w", err)
	}
	start := time.Now()
	samples, scheduled := phase(c, path, b, *rate, *workers, *dur, *failPct)
	elapsed := time.Since(start)
	after, err := scrape(c)
	if err != nil {
		return fmt.Errorf("scrape /metrics: %w", err)
	}

	r := Result{Setup: *setup, Round: *round, Rate: *rate, Workers: *workers,
		Pass: map[string]int{}, Fail: map[string]int{}, Codes: map[string]int{}, Metrics: map[string]float64{}}
	if *rate > 0 {
		r.Load = fmt.Sprintf("%d/s", *rate)
		r.DurationS = dur.Seconds()
	} else {
		r.Load = fmt.Sprintf("sat-%dw", *workers)
		r.DurationS = elapsed.Seconds()
	}
	r.Scheduled = scheduled
	var lats []float64
	for _, s := range samples {
		if s.outcome == "error" {
			r.Errors++
		}
		if s.fail {
			r.Fail[s.outcome]++
			if (*expect == "deny" && s.outcome == "allowed") || (*expect == "allow" && s.outcome == "denied") {
				r.Wrong++
			}
		} else {
			r.Pass[s.outcome]++
			if s.outcome == "denied" {
				r.Wrong++
			}
		}
		r.Codes[strconv.Itoa(s.code)]++
		if s.outcome != "error" {
			r.Completed++
		}
		lats = append(lats, float64(s.lat)/float64(time.Millisecond))
	}
	// Throughput: answered requests over the measured window (open loop: the window the
	// requests were scheduled over, plus the time the last ones took to drain).
	r.Throughput = float64(r.Completed) / elapsed.Seconds()
	sort.Float64s(lats)
	r.P50, r.P90, r.P99 = pct(lats, 50), pct(lats, 90), pct(lats, 99)
	if len(lats) > 0 {
		r.Max = lats[len(lats)-1]
	}
	for k, v := range deltas(before, after) {
		r.Metrics[k] = v
	}
	for _, s := range samples {
		if s.outcome == "error" && len(r.FirstErrors) < 3 {
			r.FirstErrors = append(r.FirstErrors, fmt.Sprintf("%d %s", s.code, s.msg))
		}
	}
	line, _ := json.Marshal(r)
	if *out == "" {
		fmt.Println(string(line))
	} else {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		f.Write(append(line, '\n'))
		f.Close()
	}
	fmt.Fprintf(os.Stderr, "  %-8s r%d %-9s thr %7.1f/s  p50 %7.2f  p90 %7.2f  p99 %7.2f ms  pass %v fail %v errors %d\n",
		r.Setup, r.Round, r.Load, r.Throughput, r.P50, r.P90, r.P99, r.Pass, r.Fail, r.Errors)
	if r.Wrong > 0 {
		return fmt.Errorf("%w: %s %s: %d wrong answers (expect %s): pass %v fail %v",
			exitCode(3), r.Setup, r.Load, r.Wrong, *expect, r.Pass, r.Fail)
	}
	if *expect == "deny" && r.Fail["denied"] == 0 && *failPct > 0 {
		return fmt.Errorf("%w: %s %s denied nothing", exitCode(3), r.Setup, r.Load)
	}
	return nil
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// Runs one phase; returns the samples and the number of requests scheduled.
func phase(c *client, path string, b bodies, rate, workers int, dur time.Duration, failPct int) ([]sample, int) {
	var seq atomic.Int64
	pick := func() (bool, []byte) {
		n := seq.Add(1) - 1
		// Deterministic mix: in every 100 requests, failPct failing ones, spread out, cycling
		// through the variants.
		if failPct > 0 && (n*int64(failPct))%100 < int64(failPct) {
			k := (n * int64(failPct) / 100) % int64(len(b.fails))
			return true, b.fails[k]
		}
		return false, b.pass
	}
	send := func(from time.Time) sample {
		fail, body := pick()
		code, rb, err := c.do("POST", path, body)
		s := sample{lat: time.Since(from), fail: fail, outcome: classify(code, err), code: code}
		if s.outcome == "error" {
			if err != nil {
				s.msg = err.Error()
			} else {
				s.msg = message(rb)
			}
		}
		return s
	}
	var mu sync.Mutex
	var samples []sample
	var wg sync.WaitGroup
	if rate <= 0 { // closed loop
		end := time.Now().Add(dur)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var local []sample
				for time.Now().Before(end) {
					local = append(local, send(time.Now()))
				}
				mu.Lock()
				samples = append(samples, local...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return samples, len(samples)
	}
	// Open loop: request i is due at start + i/rate whatever happened to the others; a pool
	// of workers sends them, and a request waiting for a free worker is charged that wait.
	total := int(dur.Seconds() * float64(rate))
	due := make(chan time.Time, total)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []sample
			for t := range due {
				local = append(local, send(t))
			}
			mu.Lock()
			samples = append(samples, local...)
			mu.Unlock()
		}()
	}
	start := time.Now().Add(20 * time.Millisecond)
	interval := float64(time.Second) / float64(rate)
	for i := 0; i < total; i++ {
		t := start.Add(time.Duration(float64(i) * interval))
		if d := time.Until(t); d > 0 {
			time.Sleep(d)
		}
		due <- t
	}
	close(due)
	wg.Wait()
	return samples, total
}

// ------------------------------------------------------------------------------ metrics

// Histograms whose mean over the measured window is reported, each with the labels a series
// must carry to count.
var histograms = []struct {
	key, name string
	labels    map[string]string
}{
	{"webhook", "apiserver_admission_webhook_admission_duration_seconds", map[string]string{"type": "validating", "operation": "CREATE"}},
	{"step_validate", "apiserver_admission_step_admission_duration_seconds", map[string]string{"type": "validate", "operation": "CREATE"}},
	{"vap_check", "apiserver_validating_admission_policy_check_duration_seconds", nil},
	{"request", "apiserver_request_duration_seconds", map[string]string{"verb": "POST", "resource": "deployments"}},
}

type sums map[string][2]float64 // key -> (sum, count)

func scrape(c *client) (sums, error) {
	code, body, err := c.do("GET", "/metrics", nil)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("status %d", code)
	}
	out := sums{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_") {
			continue
		}
		for _, h := range histograms {
			var idx int
			var rest string
			switch {
			case strings.HasPrefix(line, h.name+"_sum"):
				idx, rest = 0, line[len(h.name)+4:]
			case strings.HasPrefix(line, h.name+"_count"):
				idx, rest = 1, line[len(h.name)+6:]
			default:
				continue
			}
			labels, val, ok := parseSeries(rest)
			if !ok {
				continue
			}
			match := true
			for k, v := range h.labels {
				if labels[k] != v {
					match = false
				}
			}
			if match {
				s := out[h.key]
				s[idx] += val
				out[h.key] = s
			}
		}
	}
	return out, sc.Err()
}

// `{a="b",c="d"} 1.5` -> labels, value.
func parseSeries(s string) (map[string]string, float64, bool) {
	labels := map[string]string{}
	if strings.HasPrefix(s, "{") {
		end := strings.Index(s, "} ")
		if end < 0 {
			return nil, 0, false
		}
		for _, kv := range strings.Split(s[1:end], ",") {
			k, v, ok := strings.Cut(kv, "=")
			if ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
		s = s[end+1:]
	} else if !strings.HasPrefix(s, " ") {
		return nil, 0, false // another metric whose name extends this one
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return labels, v, err == nil
}

// Mean (ms) and count of each histogram over the window.
func deltas(before, after sums) map[string]float64 {
	out := map[string]float64{}
	for _, h := range histograms {
		a, b := after[h.key], before[h.key]
		n := a[1] - b[1]
		out[h.key+"_count"] = n
		if n > 0 {
			out[h.key+"_mean_ms"] = (a[0] - b[0]) / n * 1000
		}
	}
	return out
}

// ------------------------------------------------------------------------------ report

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	floor := fs.String("floor", "floor", "the setup the others are compared with")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("report: one results file")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct{ setup, load string }
	groups := map[key][]Result{}
	var setups, loads []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r Result
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		k := key{r.Setup, r.Load}
		groups[k] = append(groups[k], r)
		if !seen["s/"+r.Setup] {
			seen["s/"+r.Setup] = true
			setups = append(setups, r.Setup)
		}
		if !seen["l/"+r.Load] {
			seen["l/"+r.Load] = true
			loads = append(loads, r.Load)
		}
	}
	order := map[string]int{"floor": 0, "vap": 1, "kyverno": 2, "onus": 3}
	sort.SliceStable(setups, func(i, j int) bool { return rank(order, setups[i]) < rank(order, setups[j]) })
	sort.SliceStable(loads, func(i, j int) bool { return loadRank(loads[i]) < loadRank(loads[j]) })

	type agg struct {
		n                          int
		thr, p50, p90, p99         float64
		errs, sent                 int
		denied, failSent           int
		webhook, step, vap, req    float64
		hasWebhook, hasVap, hasReq bool
	}
	aggs := map[key]agg{}
	for k, rs := range groups {
		var a agg
		col := func(get func(Result) float64) float64 {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, get(r))
			}
			return median(xs)
		}
		a.n = len(rs)
		a.thr = col(func(r Result) float64 { return r.Throughput })
		a.p50 = col(func(r Result) float64 { return r.P50 })
		a.p90 = col(func(r Result) float64 { return r.P90 })
		a.p99 = col(func(r Result) float64 { return r.P99 })
		a.webhook = col(func(r Result) float64 { return r.Metrics["webhook_mean_ms"] })
		a.step = col(func(r Result) float64 { return r.Metrics["step_validate_mean_ms"] })
		a.vap = col(func(r Result) float64 { return r.Metrics["vap_check_mean_ms"] })
		a.req = col(func(r Result) float64 { return r.Metrics["request_mean_ms"] })
		for _, r := range rs {
			a.errs += r.Errors
			a.sent += r.Scheduled
			a.denied += r.Fail["denied"]
			for _, n := range r.Fail {
				a.failSent += n
			}
			a.hasWebhook = a.hasWebhook || r.Metrics["webhook_count"] > 0
			a.hasVap = a.hasVap || r.Metrics["vap_check_count"] > 0
		}
		aggs[k] = a
	}
	// An open-loop load the setup could not keep up with: latency is then mostly queueing.
	overloaded := func(s, l string) bool {
		a, ok := aggs[key{s, l}]
		rate := loadRank(l)
		return ok && rate < 1_000_000 && a.thr < 0.95*float64(rate)
	}
	dash := func(ok bool, v float64) string {
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	fmt.Println("Latency per setup and load (median over rounds; ms; open-loop latency counts from the scheduled send time)")
	fmt.Printf("%-10s %-8s %6s %9s %8s %8s %8s %8s %9s | %9s %9s %9s %9s\n",
		"load", "setup", "rounds", "thr/s", "p50", "p90", "p99", "errors", "denied", "webhook", "vap-chk", "validate", "request")
	for _, l := range loads {
		for _, s := range setups {
			a, ok := aggs[key{s, l}]
			if !ok {
				continue
			}
			note := ""
			if overloaded(s, l) {
				note = "  overloaded"
			}
			fmt.Printf("%-10s %-8s %6d %9.1f %8.2f %8.2f %8.2f %8d %4d/%-4d | %9s %9s %9.3f %9.2f%s\n",
				l, s, a.n, a.thr, a.p50, a.p90, a.p99, a.errs, a.denied, a.failSent,
				dash(a.hasWebhook, a.webhook), dash(a.hasVap, a.vap), a.step, a.req, note)
		}
	}
	fmt.Println("  webhook / vap-chk / validate / request: mean ms per request from the API server's own histograms over the")
	fmt.Println("  measured window: apiserver_admission_webhook_admission_duration_seconds (validating, CREATE),")
	fmt.Println("  apiserver_validating_admission_policy_check_duration_seconds, apiserver_admission_step_admission_duration_seconds")
	fmt.Println("  (validate, CREATE: the whole validating step) and apiserver_request_duration_seconds (POST deployments).")
	fmt.Println("  vap-chk is recorded by the API server for denied requests only (the failing expression's time).")
	fmt.Println("  overloaded: throughput below 95% of the scheduled rate; its latencies are mostly queueing.")
	fmt.Println()

	others := []string{}
	for _, s := range setups {
		if s != *floor {
			others = append(others, s)
		}
	}
	added := func(s, l string) (p50, p99, step float64, ok bool) {
		a, ok1 := aggs[key{s, l}]
		f, ok2 := aggs[key{*floor, l}]
		if !ok1 || !ok2 {
			return 0, 0, 0, false
		}
		return a.p50 - f.p50, a.p99 - f.p99, a.step - f.step, true
	}
	ratio := func(a, b float64, ok bool) string {
		if !ok || b <= 0 || a <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	overNote := func(l string) string {
		var over []string
		for _, s := range setups {
			if overloaded(s, l) {
				over = append(over, s)
			}
		}
		if len(over) == 0 {
			return ""
		}
		return "  (overloaded: " + strings.Join(over, ", ") + ")"
	}
	has := map[string]bool{}
	for _, s := range setups {
		has[s] = true
	}
	if has["onus"] {
		fmt.Printf("Added latency over %s, ratios (onus added / other added; < 1 means onus adds less)\n", *floor)
		fmt.Printf("%-10s", "load")
		for _, o := range others {
			if o == "onus" {
				continue
			}
			fmt.Printf(" %14s %14s %16s", "onus/"+o+" p50", "onus/"+o+" p99", "onus/"+o+" valid.")
		}
		fmt.Println()
		for _, l := range loads {
			fmt.Printf("%-10s", l)
			o50, o99, ostep, ook := added("onus", l)
			for _, o := range others {
				if o == "onus" {
					continue
				}
				x50, x99, xstep, xok := added(o, l)
				fmt.Printf(" %14s %14s %16s", ratio(o50, x50, ook && xok), ratio(o99, x99, ook && xok), ratio(ostep, xstep, ook && xok))
			}
			fmt.Println(overNote(l))
		}
		fmt.Println("  valid. = ratio of the added mean of the API server's validating admission step (the admission work alone).")
		fmt.Println()
	}
	fmt.Printf("Added latency over %s, absolute (ms; added p50, added p99, added mean validating step)\n", *floor)
	fmt.Printf("%-10s", "load")
	for _, o := range others {
		fmt.Printf(" %26s", o+" +p50/+p99/+step")
	}
	fmt.Println()
	for _, l := range loads {
		fmt.Printf("%-10s", l)
		for _, o := range others {
			x50, x99, xstep, ok := added(o, l)
			if !ok {
				fmt.Printf(" %26s", "-")
				continue
			}
			fmt.Printf(" %26s", fmt.Sprintf("%.2f / %.2f / %.3f", x50, x99, xstep))
		}
		fmt.Println(overNote(l))
	}
	return nil
}

func rank(order map[string]int, s string) int {
	if r, ok := order[s]; ok {
		return r
	}
	return 99
}

func loadRank(l string) int {
	if strings.HasPrefix(l, "sat-") {
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(l, "sat-"), "w"))
		return 1_000_000 + n
	}
	n, _ := strconv.Atoi(strings.TrimSuffix(l, "/s"))
	return n
}
