package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/jinn-fleet/jinn/client"
	"github.com/jinn-fleet/jinn/intake"
	"github.com/jinn-fleet/jinn/internal/fleet"
	"github.com/jinn-fleet/jinn/internal/s3test"
	"github.com/jinn-fleet/jinn/job"
	"github.com/jinn-fleet/jinn/store"
	"github.com/jinn-fleet/jinn/worker"
)

// withS3 archives to s3://jinn/archive on the fake store, which also holds
// the bucket "deps" for job files.
func withS3(fake *s3test.Server) option {
	return func(c *fleet.Config) {
		c.Archive = "s3://jinn/archive"
		c.S3 = fake.Config()
	}
}

func withFiles(f worker.FilesConfig) option { return func(c *fleet.Config) { c.Files = f } }

func withAttachmentLimits(l intake.AttachmentLimits) option {
	return func(c *fleet.Config) { c.Attachments = l }
}

// startS3 runs jinn with its archive on a fake S3 served over HTTP.
func startS3(t *testing.T, opts ...option) (*sys, *s3test.Server) {
	t.Helper()
	fake := s3test.Start(t, "jinn", "deps")
	return start(t, append([]option{withS3(fake)}, opts...)...), fake
}

func manifestOf(t *testing.T, fake *s3test.Server, id string) worker.Manifest {
	t.Helper()
	data, ok := fake.Get(t, "jinn", "archive/"+store.ManifestKey(id))
	if !ok {
		t.Fatalf("no manifest for job %s", id)
	}
	var m worker.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestS3DependenciesAndCache: a job's dependencies come from S3 into its
// directory; the next job using the same objects takes them from the
// worker's cache; fetched files are not archived again.
func TestS3DependenciesAndCache(t *testing.T) {
	s, fake := startS3(t)
	fake.Put(t, "deps", "data/input.csv", []byte("a,b\n1,2\n"))
	fake.Put(t, "deps", "bin/tool.sh", []byte("echo tool ran with $(wc -l < input.csv) lines\n"))
	req := bash("cat input.csv; bash tool.sh")
	req.Dependencies = []string{"s3://deps/data/input.csv", "s3://deps/bin/tool.sh"}

	for i := range 2 {
		j := s.submit(req)
		done := s.wait(j.ID, 20*time.Second)
		if done.Status != job.Succeeded {
			t.Fatalf("job %d: %+v", i, done)
		}
		if out := s.get(t, "/api/v1/jobs/"+j.ID+"/output/stdout"); out != "a,b\n1,2\ntool ran with 2 lines\n" {
			t.Errorf("job %d stdout %q", i, out)
		}
		if done.ArchiveStatus != job.ArchiveDone || done.ArchiveLocation != "s3://jinn/archive/jobs/"+j.ID+"/" {
			t.Errorf("job %d archive: %s %s %s", i, done.ArchiveStatus, done.ArchiveLocation, done.ArchiveMessage)
		}
		m := manifestOf(t, fake, j.ID)
		if len(m.Fetched) != 2 || m.Fetched[0].URI != "s3://deps/data/input.csv" {
			t.Errorf("manifest fetched: %+v", m.Fetched)
		}
		if _, ok := fake.Get(t, "jinn", "archive/"+store.JobKey(j.ID, "input.csv")); ok {
			t.Error("a fetched dependency was archived again")
		}
		if _, ok := fake.Get(t, "jinn", "archive/"+store.JobKey(j.ID, "run")); !ok {
			t.Error("the run script was not archived")
		}
	}
	for _, key := range []string{"data/input.csv", "bin/tool.sh"} {
		if n := fake.Hits("GET", "deps", key); n != 1 {
			t.Errorf("%s downloaded %d times by two jobs, want once", key, n)
		}
	}
}

// tarball is a .tar.gz of the given files.
func tarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestApplicationSetupOrder is Genie's model: a command links applications
// whose tarball and setup script live on S3; each job installs them and
// sources the setup files in order (applications, cluster, command, job)
// through its run script, which is kept for the user to read.
func TestApplicationSetupOrder(t *testing.T) {
	s, fake := startS3(t)
	fake.Put(t, "deps", "apps/hello/hello.tar.gz", tarball(t, map[string]string{"bin/hello": "#!/bin/sh\necho \"hello from $GREETER\"\n"}))
	step := func(name string) string { return "echo " + name + " >> \"$JINN_JOB_DIR/order\"\n" }
	fake.Put(t, "deps", "apps/hello/setup.sh", []byte(step("hello")+
		"tar xzf \"$JINN_SETUP_DIR/hello.tar.gz\" -C \"$JINN_SETUP_DIR\"\nexport PATH=\"$JINN_SETUP_DIR/bin:$PATH\"\nexport GREETER=app\n"))
	fake.Put(t, "deps", "apps/extra/setup.sh", []byte(step("extra")))
	fake.Put(t, "deps", "cluster/setup.sh", []byte(step("cluster")))
	fake.Put(t, "deps", "cluster/site.conf", []byte("site=1\n"))
	fake.Put(t, "deps", "command/setup.sh", []byte(step("command")+"export GREETER=\"$GREETER+command\"\n"))
	fake.Put(t, "deps", "job/setup.sh", []byte(step("job")))

	apps := []job.Application{
		{Name: "hello", Files: []string{"s3://deps/apps/hello/hello.tar.gz"}, Setup: "s3://deps/apps/hello/setup.sh"},
		{Name: "extra", Setup: "s3://deps/apps/extra/setup.sh"},
	}
	for _, a := range apps {
		if code := s.do("PUT", "/api/v1/applications/"+a.Name, a, nil); code != http.StatusCreated {
			t.Fatalf("put application %s: %d", a.Name, code)
		}
	}
	var local job.Cluster
	s.do("GET", "/api/v1/clusters/local", nil, &local)
	local.Setup, local.ConfigFiles = "s3://deps/cluster/setup.sh", []string{"s3://deps/cluster/site.conf"}
	if code := s.do("PUT", "/api/v1/clusters/local", local, nil); code != http.StatusOK {
		t.Fatalf("put cluster: %d", code)
	}
	cmd := job.Command{Name: "hello", Tags: []string{"type:hello"}, Executable: []string{"bash", "-c"},
		Applications: []string{"hello", "extra"}, Setup: "s3://deps/command/setup.sh"}
	if code := s.do("PUT", "/api/v1/commands/hello", cmd, nil); code != http.StatusCreated {
		t.Fatalf("put command: %d", code)
	}

	j := s.submit(job.Request{Command: []string{"type:hello"}, Setup: "s3://deps/job/setup.sh",
		Args: []string{"cat order; hello; cat jinn/cluster/local/site.conf"}})
	done := s.wait(j.ID, 20*time.Second)
	if done.Status != job.Succeeded {
		t.Fatalf("job: %+v\nstderr: %s", done, s.get(t, "/api/v1/jobs/"+j.ID+"/output/stderr"))
	}
	want := "hello\nextra\ncluster\ncommand\njob\nhello from app+command\nsite=1\n"
	if out := s.get(t, "/api/v1/jobs/"+j.ID+"/output/stdout"); out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	run := s.get(t, "/api/v1/jobs/"+j.ID+"/output/run")
	for _, line := range []string{"jinn_setup 'application hello' 'jinn/applications/hello/setup.sh'", "jinn_setup 'job' 'jinn/job/setup.sh' '.'", "jinn_command=('bash' '-c' "} {
		if !strings.Contains(run, line) {
			t.Errorf("run script lacks %q:\n%s", line, run)
		}
	}

	// What was installed (and unpacked) is not archived again; the manifest says so.
	if _, ok := fake.Get(t, "jinn", "archive/"+store.JobKey(j.ID, "jinn/applications/hello/bin/hello")); ok {
		t.Error("an unpacked application file was archived")
	}
	m := manifestOf(t, fake, j.ID)
	if len(m.Fetched) != 7 || !strings.Contains(fmt.Sprint(m.Skipped), "jinn/applications/ 0 installed from the object store") {
		t.Errorf("manifest: fetched %d, skipped %+v", len(m.Fetched), m.Skipped)
	}

	// The registry cannot lose an application a command links.
	var e apiErr
	if code := s.do("DELETE", "/api/v1/applications/hello", nil, &e); code != http.StatusConflict || !strings.Contains(e.Error.Message, "linked by command hello") {
		t.Errorf("delete a linked application: %d %+v", code, e)
	}
	var list struct {
		Applications []job.Application `json:"applications"`
	}
	if s.do("GET", "/api/v1/applications", nil, &list); len(list.Applications) != 2 {
		t.Errorf("applications: %+v", list)
	}
	// A command linking an application that does not exist: its jobs are INVALID, with why.
	cmd2 := job.Command{Name: "broken", Tags: []string{"type:broken"}, Applications: []string{"ghost"}}
	s.do("PUT", "/api/v1/commands/broken", cmd2, nil)
	if code := s.do("POST", "/api/v1/jobs", job.Request{Command: []string{"type:broken"}, Args: []string{"true"}}, &e); code != http.StatusUnprocessableEntity ||
		!strings.Contains(e.Error.Message, "links application ghost, which does not exist") {
		t.Errorf("missing application: %d %+v", code, e)
	}
	// A setup file that fails fails the job and says which.
	fake.Put(t, "deps", "job/bad.sh", []byte("echo oops; false\n"))
	bad := s.submit(job.Request{Command: []string{"type:hello"}, Setup: "s3://deps/job/bad.sh", Args: []string{"true"}})
	done = s.wait(bad.ID, 20*time.Second)
	if done.Status != job.Failed || done.Message != "setup of the job (jinn/job/bad.sh) failed with exit code 1; its output is in jinn/setup.log" {
		t.Errorf("failing setup: %s %q", done.Status, done.Message)
	}
	if log := s.get(t, "/api/v1/jobs/"+bad.ID+"/output/jinn/setup.log"); !strings.Contains(log, "oops") {
		t.Errorf("setup.log %q", log)
	}
}

// TestAttachments: files sent with the request (multipart) reach the job's
// directory under sanitized names; the limits answer 413 with the limit.
func TestAttachments(t *testing.T) {
	s, fake := startS3(t, withAttachmentLimits(intake.AttachmentLimits{MaxFile: 1024, MaxTotal: 1536}))
	cl := client.New(s.URL)
	ctx := context.Background()
	j, err := cl.SubmitWithFiles(ctx, &job.Request{Command: []string{"type:bash"}, Args: []string{"cat data.txt evil_name.sh; ls"}},
		[]client.Attachment{{Name: "data.txt", Body: strings.NewReader("payload\n")}, {Name: "../../evil name.sh", Body: strings.NewReader("more\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Request.Attachments) != 2 || j.Request.Attachments[1].Name != "evil_name.sh" || j.Request.Attachments[0].Size != 8 {
		t.Fatalf("attachments: %+v", j.Request.Attachments)
	}
	a := j.Request.Attachments[0]
	if !strings.HasPrefix(a.URI, "s3://jinn/archive/jobs/"+j.ID+"/attachments/") {
		t.Errorf("stored at %s", a.URI)
	}
	if data, ok := fake.Get(t, "jinn", strings.TrimPrefix(a.URI, "s3://jinn/")); !ok || string(data) != "payload\n" {
		t.Errorf("attachment in the store: %q %v", data, ok)
	}
	done := s.wait(j.ID, 20*time.Second)
	if out := s.get(t, "/api/v1/jobs/"+j.ID+"/output/stdout"); done.Status != job.Succeeded || out != "payload\nmore\ndata.txt\nevil_name.sh\njinn\nrun\nstderr\nstdout\n" {
		t.Errorf("job %s: %q", done.Status, out)
	}

	post := func(files map[string]int, request string) (int, string) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormField("request")
		fw.Write([]byte(request))
		for name, size := range files {
			fw, _ := mw.CreateFormFile("file", name)
			fw.Write(bytes.Repeat([]byte("x"), size))
		}
		mw.Close()
		resp, err := http.Post(s.URL+"/api/v1/jobs", mw.FormDataContentType(), &body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e apiErr
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Message
	}
	req := `{"command":["type:bash"],"args":["true"]}`
	for _, tc := range []struct {
		files map[string]int
		req   string
		code  int
		msg   string
	}{
		{map[string]int{"big.bin": 2000}, req, 413, "attached file big.bin is larger than the limit of 1024 bytes per file"},
		{map[string]int{"a": 1000, "b": 1000}, req, 413, "larger than the limit of 1536 bytes in total"},
		{map[string]int{"run": 10}, req, 400, `"run" is reserved`},
		{map[string]int{"..": 10}, req, 400, "leaves nothing usable"},
		{map[string]int{"a": 10}, `{"command":["type:bash"],"attachments":[{"name":"x","uri":"s3://b/x"}]}`, 400, "filled in by jinn"},
		{map[string]int{"a": 10}, `{"command":["type:bash"],"bogus":1}`, 400, `unknown field "bogus"`},
	} {
		code, msg := post(tc.files, tc.req)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%v: %d %q, want %d %q", tc.files, code, msg, tc.code, tc.msg)
		}
	}
}

// TestArchiveReadBackAfterWorkerStopped: once a job has ended, its output,
// logs, listing and record come from the archive on S3, from any intake,
// after its worker is gone. The archive keeps stdout, stderr and run always,
// leaves out excluded files and those past the size cap, and says so.
func TestArchiveReadBackAfterWorkerStopped(t *testing.T) {
	s, fake := startS3(t, withFiles(worker.FilesConfig{ArchiveMaxBytes: 1000, ArchiveExclude: []string{"*.tmp"}}))
	j := s.submit(bash(`echo hello; echo oops >&2; mkdir out; echo 42 > out/result.txt; head -c 5000 /dev/zero > big.bin; echo x > scratch.tmp`))
	done := s.wait(j.ID, 20*time.Second)
	if done.Status != job.Succeeded || done.ArchiveStatus != job.ArchiveDone {
		t.Fatalf("job: %+v", done)
	}
	for _, w := range s.Workers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = w.Stop(ctx)
		cancel()
	}
	other := httptest.NewServer(intake.New(intake.Deps{Admitter: s.Admitter, Broker: s.Broker, Store: s.Store, Registry: s.Registry, Archive: s.Archive, Log: hclog.NewNullLogger()}))
	defer other.Close()
	for _, base := range []string{s.URL, other.URL} {
		o := &sys{Fleet: &fleet.Fleet{URL: base}, t: t}
		for path, want := range map[string]string{"output/stdout": "hello\n", "output/stderr": "oops\n", "output/out/result.txt": "42\n", "logs": "hello\n", "logs?stream=stderr&follow=true": "oops\n"} {
			if got := o.get(t, "/api/v1/jobs/"+j.ID+"/"+path); got != want {
				t.Errorf("%s %s = %q, want %q", base, path, got, want)
			}
		}
		var list struct {
			Entries []job.File `json:"entries"`
		}
		o.do("GET", "/api/v1/jobs/"+j.ID+"/output/", nil, &list)
		var names []string
		for _, e := range list.Entries {
			names = append(names, e.Name)
		}
		if strings.Join(names, " ") != "out run stderr stdout" {
			t.Errorf("listing from %s: %v", base, names)
		}
	}
	m := manifestOf(t, fake, j.ID)
	skipped := map[string]string{}
	for _, f := range m.Skipped {
		skipped[f.Path] = f.Reason
	}
	if !strings.HasPrefix(skipped["big.bin"], "past the archive's size cap of 1000 bytes") || skipped["scratch.tmp"] != "excluded by *.tmp" {
		t.Errorf("skipped: %+v", m.Skipped)
	}
	if data, ok := fake.Get(t, "jinn", "archive/"+store.RecordKey(j.ID)); !ok || !strings.Contains(string(data), `"archiveStatus": "ARCHIVED"`) && !strings.Contains(string(data), `"archiveStatus":"ARCHIVED"`) {
		t.Errorf("archived record: %s", data)
	}
}

// TestMissingObject: a dependency that does not exist fails the job with a
// message naming it, before the command runs.
func TestMissingObject(t *testing.T) {
	s, _ := startS3(t)
	req := bash("touch ran")
	req.Dependencies = []string{"s3://deps/no/such.jar"}
	j := s.submit(req)
	done := s.wait(j.ID, 20*time.Second)
	want := "file s3://deps/no/such.jar of the job does not exist: upload it, or fix the URI"
	if done.Status != job.Failed || done.Message != want || done.ExitCode != nil {
		t.Errorf("job: %s %q %v, want FAILED %q", done.Status, done.Message, deref(done.ExitCode), want)
	}
}

// TestStoreDown: with the object store gone, a job that needs a file fails
// with a message naming the file and the store, one that needs none runs,
// and both record that their archive failed; nothing hangs.
func TestStoreDown(t *testing.T) {
	fake := s3test.Start(t, "jinn", "deps")
	cfg := fake.Config()
	cfg.MaxAttempts, cfg.Timeout = 2, time.Second
	s := start(t, func(c *fleet.Config) { c.Archive, c.S3 = "s3://jinn/archive", cfg })
	fake.Close() // the store goes down after jinn started

	begin := time.Now()
	req := bash("echo never")
	req.Dependencies = []string{"s3://deps/lib.jar"}
	needs := s.submit(req)
	plain := s.submit(bash("echo fine"))
	d1 := s.wait(needs.ID, 30*time.Second)
	d2 := s.wait(plain.ID, 30*time.Second)
	if d1.Status != job.Failed || !strings.Contains(d1.Message, "fetch s3://deps/lib.jar (file of the job)") || !strings.Contains(d1.Message, fake.URL) {
		t.Errorf("job with a file: %s %q", d1.Status, d1.Message)
	}
	if d2.Status != job.Succeeded {
		t.Errorf("job without files: %s %q", d2.Status, d2.Message)
	}
	for _, d := range []*job.Job{d1, d2} {
		if d.ArchiveStatus != job.ArchiveFailed || !strings.Contains(d.ArchiveMessage, "s3://jinn/archive/jobs/"+d.ID+"/") {
			t.Errorf("job %s archive: %s %q", d.ID, d.ArchiveStatus, d.ArchiveMessage)
		}
	}
	if took := time.Since(begin); took > 20*time.Second {
		t.Errorf("took %s", took)
	}
	// Reading its output says what went wrong instead of hanging.
	resp, err := http.Get(s.URL + "/api/v1/jobs/" + plain.ID + "/output/stdout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("output of a job whose archive failed: %d", resp.StatusCode)
	}
}

// TestUpWithS3Archive runs the real binary: `jinn up --archive
// s3://bucket/prefix --s3-endpoint http://...` against an S3-compatible
// server, with a job that uses a file from it.
func TestUpWithS3Archive(t *testing.T) {
	bin := jinnBinary(t)
	fake := s3test.Start(t, "jinn", "deps")
	fake.Put(t, "deps", "greeting.txt", []byte("hi from s3\n"))
	cmd := exec.Command(bin, "up", "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--data-dir", t.TempDir(),
		"--archive", "s3://jinn/prefix", "--s3-endpoint", fake.URL, "--s3-path-style", "--s3-region", "us-east-1",
		"--job-memory", "1024", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3test.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3test.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true", "JINN_DATA="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("jinn up said:\n%s", logs.String())
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "jinn is ready at "); ok {
				ready <- url
			}
		}
	}()
	var url string
	select {
	case url = <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("jinn up did not become ready")
	}
	cl := client.New(url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := cl.Submit(ctx, &job.Request{Command: []string{"type:exec"}, Args: []string{"cat", "greeting.txt"}, Dependencies: []string{"s3://deps/greeting.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	done, err := cl.Wait(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != job.Succeeded || done.ArchiveStatus != job.ArchiveDone {
		t.Fatalf("job: %+v", done)
	}
	if data, ok := fake.Get(t, "jinn", "prefix/"+store.JobKey(j.ID, "stdout")); !ok || string(data) != "hi from s3\n" {
		t.Errorf("archived stdout %q %v", data, ok)
	}
	rc, err := cl.Logs(ctx, j.ID, client.Stdout, false)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	if string(out) != "hi from s3\n" {
		t.Errorf("logs %q", out)
	}
}

// TestLocalArchiveFiles: with the embedded default (a local archive
// directory), attachments and file:// dependencies work the same.
func TestLocalArchiveFiles(t *testing.T) {
	s := start(t)
	dep := t.TempDir() + "/conf.ini"
	if err := os.WriteFile(dep, []byte("k=v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cl := client.New(s.URL)
	j, err := cl.SubmitWithFiles(context.Background(), &job.Request{Command: []string{"type:bash"}, Args: []string{"cat conf.ini notes.txt"}, Dependencies: []string{"file://" + dep}},
		[]client.Attachment{{Name: "notes.txt", Body: strings.NewReader("attached\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(j.Request.Attachments[0].URI, "file:///") {
		t.Errorf("attachment at %s", j.Request.Attachments[0].URI)
	}
	done := s.wait(j.ID, 20*time.Second)
	if out := s.get(t, "/api/v1/jobs/"+j.ID+"/output/stdout"); done.Status != job.Succeeded || out != "k=v\nattached\n" || done.ArchiveStatus != job.ArchiveDone {
		t.Errorf("job %s %s: %q", done.Status, done.ArchiveStatus, out)
	}
}
