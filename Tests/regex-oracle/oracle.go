// The oracle for logrelay's regex engine (Sources/LogRelayCore/Regex): Docker matches
// env-regex and labels-regex with Go's regexp, so Go's verdicts are the expected ones.
//
// Reads corpus.tsv on stdin and writes it to stdout with the third column replaced by Go's
// verdict: "match", "no", or "error" when regexp.Compile rejects the pattern. Comment and
// blank lines are copied as they are. check.sh compares the output with the committed file.
//
// Fields are raw text except %XX (a byte in hex), used for tab, newline, CR, "%" and bytes
// that are not valid UTF-8.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

func unescape(s string) []byte {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(v))
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for n := 1; in.Scan(); n++ {
		line := in.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			fmt.Fprintln(w, line)
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			fmt.Fprintf(os.Stderr, "corpus line %d: want 3 tab-separated fields, have %d\n", n, len(f))
			os.Exit(2)
		}
		verdict := "error"
		if re, err := regexp.Compile(string(unescape(f[0]))); err == nil {
			verdict = "no"
			if re.Match(unescape(f[1])) {
				verdict = "match"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", f[0], f[1], verdict)
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
