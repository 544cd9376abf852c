package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: check k8s FILE... | check compose FILE")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "k8s":
		err = checkK8s(os.Args[2:])
	case "compose":
		err = checkCompose(os.Args[2])
	default:
		err = fmt.Errorf("unknown check %q: k8s or compose", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
}

// typed returns the k8s.io/api object a document of kind decodes into.
func typed(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, true
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	}
	return nil, false
}

func checkK8s(files []string) error {
	var problems []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		n := 0
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if meta.Kind == "" {
				continue // an empty document (a template that rendered nothing)
			}
			n++
			where := fmt.Sprintf("%s: %s %s", filepath.Base(f), meta.APIVersion, meta.Kind)
			obj, ok := typed(meta.APIVersion, meta.Kind)
			if !ok {
				if meta.Kind == "ServiceMonitor" && meta.APIVersion == "monitoring.coreos.com/v1" {
					continue // a CRD: no typed schema here; rendered only when enabled
				}
				problems = append(problems, where+": no schema for this kind in this check; add it to typed()")
				continue
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", where, err))
				continue
			}
			for _, p := range semantic(obj) {
				problems = append(problems, where+": "+p)
			}
		}
		if n == 0 {
			problems = append(problems, f+": no Kubernetes objects")
		}
		fmt.Printf("%s: %d objects decoded strictly\n", f, n)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// semantic makes the checks the API server makes beyond the schema that
// most often break charts.
func semantic(obj any) []string {
	var out []string
	check := func(name string, sel *metav1.LabelSelector, pod *corev1.PodTemplateSpec) {
		if name == "" {
			out = append(out, "metadata.name is empty")
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() {
			out = append(out, fmt.Sprintf("spec.selector is empty or invalid: %v", err))
		} else if !s.Matches(labels.Set(pod.Labels)) {
			out = append(out, "spec.selector does not match spec.template.metadata.labels")
		}
		out = append(out, podProblems(&pod.Spec)...)
	}
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		check(o.Name, o.Spec.Selector, &o.Spec.Template)
		if o.Spec.ServiceName == "" {
			out = append(out, "spec.serviceName is empty")
		}
		claims := map[string]bool{}
		for _, c := range o.Spec.VolumeClaimTemplates {
			claims[c.Name] = true
		}
		out = append(out, mountProblems(&o.Spec.Template.Spec, claims)...)
	case *appsv1.Deployment:
		check(o.Name, o.Spec.Selector, &o.Spec.Template)
		out = append(out, mountProblems(&o.Spec.Template.Spec, nil)...)
	case *appsv1.DaemonSet:
		check(o.Name, o.Spec.Selector, &o.Spec.Template)
		out = append(out, mountProblems(&o.Spec.Template.Spec, nil)...)
	case *policyv1.PodDisruptionBudget:
		if o.Spec.Selector == nil {
			out = append(out, "spec.selector is missing")
		}
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			out = append(out, "exactly one of minAvailable and maxUnavailable must be set")
		}
	case *corev1.Service:
		for _, p := range o.Spec.Ports {
			if p.Port < 1 || p.Port > 65535 {
				out = append(out, fmt.Sprintf("port %q: %d out of range", p.Name, p.Port))
			}
		}
	}
	return out
}

func podProblems(spec *corev1.PodSpec) []string {
	var out []string
	if len(spec.Containers) == 0 {
		out = append(out, "no containers")
	}
	for _, c := range spec.Containers {
		if c.Image == "" {
			out = append(out, "container "+c.Name+": no image")
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			if len(p.Name) > 15 {
				out = append(out, fmt.Sprintf("container %s: port name %q is longer than 15 characters", c.Name, p.Name))
			}
			ports[p.Name] = true
		}
		for what, pr := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
			if pr != nil && pr.HTTPGet != nil && pr.HTTPGet.Port.StrVal != "" && !ports[pr.HTTPGet.Port.StrVal] {
				out = append(out, fmt.Sprintf("container %s: %s names port %q, which the container does not declare", c.Name, what, pr.HTTPGet.Port.StrVal))
			}
		}
	}
	return out
}

func mountProblems(spec *corev1.PodSpec, claims map[string]bool) []string {
	vols := map[string]bool{}
	for _, v := range spec.Volumes {
		vols[v.Name] = true
	}
	var out []string
	for _, c := range spec.Containers {
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] && !claims[m.Name] {
				out = append(out, fmt.Sprintf("container %s mounts volume %q, which is neither a volume nor a claim template", c.Name, m.Name))
			}
		}
	}
	return out
}

func checkCompose(file string) error {
	ctx := context.Background()
	opts, err := cli.NewProjectOptions([]string{file}, cli.WithOsEnv, cli.WithWorkingDirectory(filepath.Dir(file)), cli.WithName("hookwire"))
	if err != nil {
		return err
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d services (%s) valid against the Compose specification\n", file, len(p.Services), strings.Join(p.ServiceNames(), ", "))
	return nil
}
