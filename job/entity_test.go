package job

import (
	"strings"
	"testing"
)

func TestClusterValidate(t *testing.T) {
	tests := []struct {
		name  string
		c     Cluster
		field string // "" when valid
		want  ClusterStatus
	}{
		{"defaults to UP", Cluster{Name: "prod"}, "", ClusterUp},
		{"out of service", Cluster{Name: "prod", Status: ClusterOutOfService, Tags: []string{"sched:prod"}}, "", ClusterOutOfService},
		{"terminated", Cluster{Name: "prod", Status: ClusterTerminated}, "", ClusterTerminated},
		{"own name tag", Cluster{Name: "prod", Tags: []string{"name:prod"}}, "", ClusterUp},
		{"env", Cluster{Name: "prod", Env: map[string]string{"HADOOP_CONF_DIR": "/etc/hadoop"}}, "", ClusterUp},
		{"no name", Cluster{}, "name", ""},
		{"name with dot", Cluster{Name: "prod.eu"}, "name", ""},
		{"name uppercase", Cluster{Name: "Prod"}, "name", ""},
		{"name wildcard", Cluster{Name: ">"}, "name", ""},
		{"lowercase status", Cluster{Name: "prod", Status: "up"}, "status", ""},
		{"unknown status", Cluster{Name: "prod", Status: "DOWN"}, "status", ""},
		{"bad tag", Cluster{Name: "prod", Tags: []string{"a", "b c"}}, "tags[1]", ""},
		{"another's name tag", Cluster{Name: "bonus", Tags: []string{"sched:bonus", "name:prod"}}, "tags[1]", ""},
		{"reserved env", Cluster{Name: "prod", Env: map[string]string{"JINN_CLUSTER": "x"}}, "env.JINN_CLUSTER", ""},
	}
	for _, tt := range tests {
		c := tt.c
		err := c.Validate()
		if tt.field == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v", tt.name, err)
			} else if c.Status != tt.want {
				t.Errorf("%s: status = %q, want %q", tt.name, c.Status, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Validate() = nil, want an error on %s", tt.name, tt.field)
			continue
		}
		if f := fieldOf(t, err); f != tt.field {
			t.Errorf("%s: field = %q, want %q (%v)", tt.name, f, tt.field, err)
		}
	}
	c := Cluster{Name: "prod", Status: "DOWN"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "OUT_OF_SERVICE") {
		t.Errorf("status error %v does not list the statuses", err)
	}
}

func TestCommandValidate(t *testing.T) {
	tests := []struct {
		name  string
		c     Command
		field string
		want  CommandStatus
	}{
		{"defaults to ACTIVE", Command{Name: "spark", Executable: []string{"spark-submit"}}, "", CommandActive},
		{"deprecated", Command{Name: "spark", Status: CommandDeprecated}, "", CommandDeprecated},
		{"inactive", Command{Name: "spark", Status: CommandInactive}, "", CommandInactive},
		{"no executable: args are argv", Command{Name: "exec", Tags: []string{"type:exec"}}, "", CommandActive},
		{"full", Command{
			Name: "spark", Tags: []string{"type:spark"}, Executable: []string{"/opt/spark/bin/spark-submit", "--master", "yarn", ""},
			Env: map[string]string{"SPARK_HOME": "/opt/spark"}, Memory: MaxMemoryMiB,
			ClusterCriteria: [][]string{{"type:yarn"}, {"name:local"}}, Applications: []string{"spark-3", "hadoop"},
		}, "", CommandActive},
		{"no name", Command{}, "name", ""},
		{"name with space", Command{Name: "spark submit"}, "name", ""},
		{"name with star", Command{Name: "spark*"}, "name", ""},
		{"unknown status", Command{Name: "spark", Status: "RETIRED"}, "status", ""},
		{"lowercase status", Command{Name: "spark", Status: "active"}, "status", ""},
		{"bad tag", Command{Name: "spark", Tags: []string{">"}}, "tags[0]", ""},
		{"another's name tag", Command{Name: "spark", Tags: []string{"name:hive"}}, "tags[0]", ""},
		{"empty executable", Command{Name: "spark", Executable: []string{"", "x"}}, "executable", ""},
		{"nul in executable", Command{Name: "spark", Executable: []string{"a", "b\x00"}}, "executable[1]", ""},
		{"negative memory", Command{Name: "spark", Memory: -1}, "memory", ""},
		{"huge memory", Command{Name: "spark", Memory: MaxMemoryMiB + 1}, "memory", ""},
		{"empty criterion", Command{Name: "spark", ClusterCriteria: [][]string{{"a"}, {}}}, "clusterCriteria[1]", ""},
		{"bad criterion tag", Command{Name: "spark", ClusterCriteria: [][]string{{"a", "b.*"}}}, "clusterCriteria[0][1]", ""},
		{"bad application", Command{Name: "spark", Applications: []string{"ok", "Not.OK"}}, "applications[1]", ""},
		{"reserved env", Command{Name: "spark", Env: map[string]string{"JINN_X": ""}}, "env.JINN_X", ""},
		{"env nul", Command{Name: "spark", Env: map[string]string{"X": "\x00"}}, "env.X", ""},
	}
	for _, tt := range tests {
		c := tt.c
		err := c.Validate()
		if tt.field == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v", tt.name, err)
			} else if c.Status != tt.want {
				t.Errorf("%s: status = %q, want %q", tt.name, c.Status, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Validate() = nil, want an error on %s", tt.name, tt.field)
			continue
		}
		if f := fieldOf(t, err); f != tt.field {
			t.Errorf("%s: field = %q, want %q (%v)", tt.name, f, tt.field, err)
		}
	}
}

func TestApplicationValidate(t *testing.T) {
	tests := []struct {
		name  string
		a     Application
		field string
	}{
		{"minimal", Application{Name: "spark-3"}, ""},
		{"full", Application{Name: "spark-3", Tags: []string{"type:spark", "name:spark-3"}, Files: []string{"s3://bkt/spark.tgz", "file:///opt/jars/x.jar"}, Setup: "s3://bkt/spark/setup.sh"}, ""},
		{"setup is a file, not a script", Application{Name: "spark", Setup: "tar xzf spark.tgz"}, "setup"},
		{"file not a URI", Application{Name: "spark", Files: []string{"s3://bkt/a.jar", "/opt/b.jar"}}, "files[1]"},
		{"file is a directory", Application{Name: "spark", Files: []string{"s3://bkt/lib/"}}, "files[0]"},
		{"file is a bucket", Application{Name: "spark", Files: []string{"s3://bkt"}}, "files[0]"},
		{"no name", Application{}, "name"},
		{"bad name", Application{Name: "spark.3"}, "name"},
		{"bad tag", Application{Name: "spark", Tags: []string{""}}, "tags[0]"},
		{"another's name tag", Application{Name: "spark", Tags: []string{"name:hadoop"}}, "tags[0]"},
	}
	for _, tt := range tests {
		err := tt.a.Validate()
		if tt.field == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Validate() = nil, want an error on %s", tt.name, tt.field)
			continue
		}
		if f := fieldOf(t, err); f != tt.field {
			t.Errorf("%s: field = %q, want %q (%v)", tt.name, f, tt.field, err)
		}
	}
}
