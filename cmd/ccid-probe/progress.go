package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// progressBar draws a bar on stderr while bench runs, only when stderr is a terminal, at most 10 times a second.
type progressBar struct {
	w     io.Writer
	on    bool
	last  time.Time
	drawn bool
	now   func() time.Time
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, on: isTerminal(w), now: time.Now}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (p *progressBar) update(done, total int) {
	if !p.on || total <= 0 {
		return
	}
	if now := p.now(); done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	} else {
		p.last = now
	}
	fmt.Fprint(p.w, "\r"+renderBar(done, total, 40))
	p.drawn = true
}

// done clears the bar.
func (p *progressBar) done() {
	if p.drawn {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", 60)+"\r")
	}
}

// renderBar returns "[#####.....]  50% 5/10" with width cells.
func renderBar(done, total, width int) string {
	done = min(max(done, 0), total)
	n := done * width / total
	return fmt.Sprintf("[%s%s] %3d%% %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), done*100/total, done, total)
}
