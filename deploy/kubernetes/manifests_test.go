package kubernetes_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// These tests need no cluster: they keep the manifests consistent with the
// bundled Envoy configs, the sidecar's config loader and each other.

// Each layout's Envoy config is a bundled one, changed only where a pod needs
// it: the listener's address, the ready listener and its admin cluster, and
// (shared) clusters that find their endpoints by DNS.
func TestEnvoyConfigsAreTheBundledOnes(t *testing.T) {
	for _, tc := range []struct{ file, bundled string }{
		{"sidecar/envoy.yaml", "envoy-uds.yaml"},
		{"shared/envoy.yaml", "envoy-mtls.yaml"},
	} {
		t.Run(tc.file+" is envoy/"+tc.bundled+" listening in a pod", func(t *testing.T) {
			root, err := envoytest.RepoRoot()
			if err != nil {
				t.Fatal(err)
			}
			bundled, err := envoytest.LoadBootstrap(filepath.Join(root, "envoy", tc.bundled))
			if err != nil {
				t.Fatal(err)
			}
			b, err := envoytest.LoadBootstrap(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if err := envoytest.ValidateDeep(b); err != nil {
				t.Fatal(err)
			}
			for _, l := range b.GetStaticResources().GetListeners() {
				if ep := envoytest.SocketAddress(l.GetAddress()); ep.Host != "0.0.0.0" {
					t.Errorf("listener %s binds %s: in a pod it must bind 0.0.0.0", l.GetName(), ep)
				}
			}
			if ep := envoytest.SocketAddress(b.GetAdmin().GetAddress()); ep.Host != "127.0.0.1" {
				t.Errorf("admin on %s: keep it on the pod's loopback", ep)
			}
			normalize := func(in *bootstrapv3.Bootstrap) *bootstrapv3.Bootstrap {
				out := proto.Clone(in).(*bootstrapv3.Bootstrap)
				sr := out.GetStaticResources()
				sr.Listeners = slices.DeleteFunc(sr.Listeners, func(l *listenerv3.Listener) bool { return l.GetName() == "ready" })
				sr.Clusters = slices.DeleteFunc(sr.Clusters, func(c *clusterv3.Cluster) bool { return c.GetName() == "envoy_admin" })
				for _, l := range sr.GetListeners() {
					l.Address = nil
				}
				if tc.bundled == "envoy-mtls.yaml" {
					for _, c := range sr.GetClusters() {
						c.ClusterDiscoveryType, c.DnsLookupFamily, c.DnsRefreshRate, c.LoadAssignment = nil, clusterv3.Cluster_AUTO, nil, nil
					}
				}
				return out
			}
			if !proto.Equal(normalize(b), normalize(bundled)) {
				t.Errorf("%s has drifted from envoy/%s beyond what a pod needs; copy the change across", tc.file, tc.bundled)
			}
		})
	}
}

func TestSidecarEnvoyValidates(t *testing.T) {
	bin := envoytest.RequireBinary(t)
	if out, err := envoytest.Validate(bin, "sidecar/envoy.yaml"); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("envoy --mode validate: %v\n%s", err, out)
	}
}

// container is the part of a pod's container the tests read.
type container struct {
	Name            string
	Image           string
	ImagePullPolicy string `yaml:"imagePullPolicy"`
	Args            []string
	Env             []struct{ Name, Value string }
	VolumeMounts    []mount        `yaml:"volumeMounts"`
	ReadinessProbe  map[string]any `yaml:"readinessProbe"`
	LivenessProbe   map[string]any `yaml:"livenessProbe"`
	Lifecycle       struct {
		PreStop struct{ Sleep struct{ Seconds int } } `yaml:"preStop"`
	}
}

type mount struct {
	Name      string
	MountPath string `yaml:"mountPath"`
	SubPath   string `yaml:"subPath"`
}

// deployments reads the Deployments of a manifest file by name.
func deployments(t *testing.T, file string) map[string][]container {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]container{}
	dec := yaml.NewDecoder(f)
	for {
		var doc struct {
			Kind     string
			Metadata struct{ Name string }
			Spec     struct {
				Replicas int
				Template struct {
					Spec struct{ Containers []container }
				}
			}
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind == "Deployment" {
			out[doc.Metadata.Name] = doc.Spec.Template.Spec.Containers
		}
	}
	return out
}

func env(c container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// The sidecar's pods hold together: extauthz listens on the socket Envoy's
// extauthz_grpc cluster dials, in the volume both mount; the probe asks that
// socket; the config is loaded by the sidecar's own loader with the pod's
// environment; and Envoy stops before the containers it needs.
func TestSidecarPodIsWired(t *testing.T) {
	pods := deployments(t, "sidecar/deployment.yaml")["app"]
	byName := map[string]container{}
	for _, c := range pods {
		byName[c.Name] = c
		if c.ImagePullPolicy != "Never" {
			t.Errorf("container %s: imagePullPolicy %q, want Never (images.sh imports them; no registry here)", c.Name, c.ImagePullPolicy)
		}
		for _, m := range c.VolumeMounts {
			if m.SubPath != "" {
				t.Errorf("container %s mounts %s with a subPath, which never sees ConfigMap updates", c.Name, m.Name)
			}
		}
	}
	extauthz, envoy := byName["extauthz"], byName["envoy"]
	b, err := envoytest.LoadBootstrap("sidecar/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pipe := envoytest.Cluster(b, "extauthz_grpc").GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetPipe().GetPath()
	if got := env(extauthz, "GRPC_ADDRESS"); got != "unix://"+pipe {
		t.Errorf("extauthz listens on %q, Envoy dials %q", got, pipe)
	}
	for _, c := range []container{extauthz, envoy} {
		if !slices.ContainsFunc(c.VolumeMounts, func(m mount) bool {
			return m.Name == "extauthz-socket" && m.MountPath == filepath.Dir(pipe)
		}) {
			t.Errorf("container %s does not mount the socket's directory %s", c.Name, filepath.Dir(pipe))
		}
	}
	for _, probe := range []map[string]any{extauthz.ReadinessProbe, extauthz.LivenessProbe} {
		cmd, _ := probe["exec"].(map[string]any)["command"].([]any)
		if len(cmd) < 4 || cmd[0] != "/bin/extauthz" || cmd[1] != "healthcheck" || cmd[3] != "unix://"+pipe {
			t.Errorf("extauthz probe %v, want /bin/extauthz healthcheck --addr unix://%s", cmd, pipe)
		}
	}
	if e, x := envoy.Lifecycle.PreStop.Sleep.Seconds, extauthz.Lifecycle.PreStop.Sleep.Seconds; e == 0 || x <= e || byName["app"].Lifecycle.PreStop.Sleep.Seconds <= e {
		t.Errorf("preStop sleeps: envoy %d s, extauthz %d s, app %d s: Envoy must wait, and stop before the others",
			e, x, byName["app"].Lifecycle.PreStop.Sleep.Seconds)
	}
	src, err := os.ReadFile("base/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, key := testkit.SigningKey(t)
	podEnv := map[string]string{
		"GRPC_ADDRESS": env(extauthz, "GRPC_ADDRESS"), "HTTP_ADDRESS": env(extauthz, "HTTP_ADDRESS"),
		// What secrets.sh puts in the Secret, in test values.
		"SHARED_SECRET": testkit.Secret(t), "SIGNING_KEY": key, "DATABROKER_STORAGE_CONNECTION_STRING": "redis://redis:6379/0",
	}
	cfg, err := config.Parse(src, "base/config.yaml", func(k string) (string, bool) { v, ok := podEnv[k]; return v, ok })
	if err != nil {
		t.Fatalf("the sidecar refuses base/config.yaml with the pod's environment: %v", err)
	}
	if cfg.HTTPAddress != "127.0.0.1:9292" || envoytest.Endpoints(envoytest.Cluster(b, "extauthz_http"))[0].String() != cfg.HTTPAddress {
		t.Errorf("pages on %s, Envoy's extauthz_http cluster is %v", cfg.HTTPAddress, envoytest.Endpoints(envoytest.Cluster(b, "extauthz_http")))
	}
}
