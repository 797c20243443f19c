package job

import (
	"reflect"
	"strings"
	"testing"
)

func TestValidateURI(t *testing.T) {
	for uri, ok := range map[string]bool{
		"s3://bucket/key":               true,
		"s3://my.bucket-1/a/b/c.tar.gz": true,
		"file:///etc/hosts":             true,
		"file:///a%20b/c.txt":           true,
		"s3://bucket":                   false,
		"s3://bucket/":                  false,
		"s3://bucket/dir/":              false,
		"s3://Bucket/key":               false,
		"s3://b/key":                    false, // bucket names have 3 characters at least
		"file://host/etc/hosts":         false,
		"file:relative":                 false,
		"/etc/hosts":                    false,
		"http://example.com/x":          false,
		"s3://bucket/a\x00b":            false,
		"s3://bucket/a\nb":              false,
		"s3://bucket/..":                false,
		"s3://bucket/" + strings.Repeat("k", MaxURILength): false,
	} {
		if err := ValidateURI("uri", uri); (err == nil) != ok {
			t.Errorf("ValidateURI(%q) = %v, want ok %v", uri, err, ok)
		}
	}
}

func TestSanitizeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"data.csv":               "data.csv",
		"../../etc/passwd":       "passwd",
		`C:\Users\me\a b.txt`:    "a_b.txt",
		"réport (final).pdf":     "r_port_final_.pdf",
		".bashrc":                ".bashrc",
		"..":                     "",
		"...":                    "",
		"dir/":                   "",
		"a\x00b":                 "a_b",
		"$(rm -rf)":              "_rm_-rf_",
		strings.Repeat("x", 300): strings.Repeat("x", 255),
	} {
		if got := SanitizeFileName(in); got != want {
			t.Errorf("SanitizeFileName(%q) = %q, want %q", in, got, want)
		}
		if got := SanitizeFileName(in); got != "" {
			if err := ValidateFileName("f", got); err != nil {
				t.Errorf("sanitized %q is not valid: %v", got, err)
			}
		}
	}
}

func TestBaseName(t *testing.T) {
	for uri, want := range map[string]string{"s3://b/a/x.jar": "x.jar", "file:///opt/a%20b.txt": "a b.txt", "file:///x": "x"} {
		if got := BaseName(uri); got != want {
			t.Errorf("BaseName(%q) = %q, want %q", uri, got, want)
		}
	}
}

// TestPlan: what a worker installs and sources, in Genie's order.
func TestPlan(t *testing.T) {
	apps := []Application{
		{Name: "spark", Files: []string{"s3://apps/spark/spark.tgz"}, Setup: "s3://apps/spark/setup.sh"},
		{Name: "hadoop", Setup: "s3://apps/hadoop/setup.sh"},
	}
	cl := Cluster{Name: "prod", ConfigFiles: []string{"s3://conf/prod/core-site.xml"}, Setup: "s3://conf/prod/env.sh"}
	cmd := Command{Name: "spark-submit", ConfigFiles: []string{"s3://conf/spark/defaults.conf"}, Setup: "s3://conf/spark/setup.sh"}
	req := &Request{Dependencies: []string{"s3://data/in.csv"}, Setup: "s3://me/setup.sh",
		Attachments: []Attachment{{Name: "query.sql", URI: "s3://arch/jobs/j/attachments/ab/query.sql"}}}
	files, setups, err := Plan(apps, cl, cmd, req)
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []Dependency{
		{URI: "s3://apps/spark/spark.tgz", Path: "jinn/applications/spark/spark.tgz", For: "application spark"},
		{URI: "s3://apps/spark/setup.sh", Path: "jinn/applications/spark/setup.sh", For: "application spark"},
		{URI: "s3://apps/hadoop/setup.sh", Path: "jinn/applications/hadoop/setup.sh", For: "application hadoop"},
		{URI: "s3://conf/prod/core-site.xml", Path: "jinn/cluster/prod/core-site.xml", For: "cluster prod"},
		{URI: "s3://conf/prod/env.sh", Path: "jinn/cluster/prod/env.sh", For: "cluster prod"},
		{URI: "s3://conf/spark/defaults.conf", Path: "jinn/command/spark-submit/defaults.conf", For: "command spark-submit"},
		{URI: "s3://conf/spark/setup.sh", Path: "jinn/command/spark-submit/setup.sh", For: "command spark-submit"},
		{URI: "s3://data/in.csv", Path: "in.csv", For: "job"},
		{URI: "s3://arch/jobs/j/attachments/ab/query.sql", Path: "query.sql", For: "attachment"},
		{URI: "s3://me/setup.sh", Path: "jinn/job/setup.sh", For: "job"},
	}
	if !reflect.DeepEqual(files, wantFiles) {
		t.Errorf("files:\n%+v\nwant\n%+v", files, wantFiles)
	}
	var order []string
	for _, s := range setups {
		order = append(order, s.For+" "+s.Path+" "+s.Dir)
	}
	want := []string{
		"application spark jinn/applications/spark/setup.sh jinn/applications/spark",
		"application hadoop jinn/applications/hadoop/setup.sh jinn/applications/hadoop",
		"cluster prod jinn/cluster/prod/env.sh jinn/cluster/prod",
		"command spark-submit jinn/command/spark-submit/setup.sh jinn/command/spark-submit",
		"job jinn/job/setup.sh .",
	}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("setup order:\n%q\nwant\n%q", order, want)
	}

	// Nothing to install: nothing planned.
	if f, s, err := Plan(nil, Cluster{Name: "c"}, Command{Name: "x"}, &Request{}); err != nil || f != nil || s != nil {
		t.Errorf("empty plan: %v %v %v", f, s, err)
	}
	// Two different objects for one path name both.
	bad := Application{Name: "spark", Files: []string{"s3://a/lib.jar", "s3://b/lib.jar"}}
	if _, _, err := Plan([]Application{bad}, cl, cmd, &Request{}); err == nil ||
		!strings.Contains(err.Error(), "s3://a/lib.jar and s3://b/lib.jar would both be jinn/applications/spark/lib.jar") {
		t.Errorf("collision: %v", err)
	}
	// The same object twice is one file.
	twice := Application{Name: "spark", Files: []string{"s3://a/lib.jar", "s3://a/lib.jar"}}
	if f, _, err := Plan([]Application{twice}, Cluster{Name: "c"}, Command{Name: "x"}, &Request{}); err != nil || len(f) != 1 {
		t.Errorf("the same file twice: %v %v", f, err)
	}
}

func TestArchiveOf(t *testing.T) {
	for _, tc := range []struct {
		st       Status
		recorded ArchiveStatus
		want     ArchiveStatus
	}{
		{Queued, "", ArchivePending},
		{Running, ArchivePending, ArchivePending},
		{Succeeded, ArchiveDone, ArchiveDone},
		{Failed, ArchiveFailed, ArchiveFailed},
		{Killed, ArchiveDisabled, ArchiveDisabled},
		{Invalid, "", ArchiveNoFiles},
		{Lost, "", ArchiveNoFiles},
		{Lost, ArchivePending, ArchiveNoFiles},
	} {
		if got := ArchiveOf(tc.st, tc.recorded); got != tc.want {
			t.Errorf("ArchiveOf(%s, %q) = %s, want %s", tc.st, tc.recorded, got, tc.want)
		}
	}
}
