// kstatus reads Kubernetes objects (a JSON List on stdin) and prints, one line
// each, what sigs.k8s.io/cli-utils' kstatus computes for them: the status Flux
// and other GitOps tools wait on. The tests use it to check that Sluice's
// conditions read the way those tools read them.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&list); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading a JSON List from stdin:", err)
		os.Exit(2)
	}
	for _, item := range list.Items {
		// apimachinery's own decoding: integers stay int64, as kstatus expects.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(item); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: decoding an item:", err)
			os.Exit(2)
		}
		result, err := status.Compute(obj)
		if err != nil {
			fmt.Printf("%s\tError\t%v\n", obj.GetName(), err)
			continue
		}
		fmt.Printf("%s\t%s\t%s\n", obj.GetName(), result.Status, result.Message)
	}
}
