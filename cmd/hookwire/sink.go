package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// newSinkCmd runs a local receiver that prints every request, for trying
// Hookwire out without writing one.
func newSinkCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Run a local webhook receiver that prints what it gets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lis, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Receiving webhooks on http://%s/ (any path)\n", lis.Addr())
			var mu sync.Mutex
			srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
				names := make([]string, 0, len(r.Header))
				for k := range r.Header {
					names = append(names, k)
				}
				sort.Strings(names)
				mu.Lock()
				fmt.Fprintf(out, "--- %s %s %s\n", time.Now().Format(time.TimeOnly), r.Method, r.URL.Path)
				for _, k := range names {
					fmt.Fprintf(out, "%s: %s\n", k, r.Header.Get(k))
				}
				fmt.Fprintf(out, "\n%s\n", body)
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			})}
			go func() {
				<-cmd.Context().Done()
				srv.Close()
			}()
			if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:9000", "listen address")
	return cmd
}
