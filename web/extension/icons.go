package extension

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
)

// iconSizes are the sizes the manifest names (toolbar, menu, store).
var iconSizes = []int{16, 32, 48, 128}

// icons draws the DDT mark — the page's favicon: three nodes on a
// triangle, light on a rounded teal square — at each size, as PNG (the
// toolbar takes no SVG).
func icons() map[int][]byte {
	out := map[int][]byte{}
	for _, n := range iconSizes {
		var buf bytes.Buffer
		if err := png.Encode(&buf, drawMark(n)); err != nil {
			panic(err) // encoding an in-memory RGBA image does not fail
		}
		out[n] = buf.Bytes()
	}
	return out
}

// drawMark renders the mark in a 32-unit square scaled to n pixels, each
// pixel the mean of 4×4 samples.
func drawMark(n int) *image.NRGBA {
	bg := [3]float64{0x25, 0x6a, 0x5c}
	fg := [3]float64{0xe8, 0xf3, 0xef}
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	const ss = 4
	scale := 32 / float64(n)
	for py := 0; py < n; py++ {
		for px := 0; px < n; px++ {
			var cover, light float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/ss) * scale
					y := (float64(py) + (float64(sy)+0.5)/ss) * scale
					if !inRoundedSquare(x, y, 32, 7) {
						continue
					}
					cover++
					if onMark(x, y) {
						light++
					}
				}
			}
			if cover == 0 {
				continue
			}
			t := light / cover
			var c [3]uint8
			for i := range c {
				c[i] = uint8(math.Round(bg[i]*(1-t) + fg[i]*t))
			}
			img.SetNRGBA(px, py, color.NRGBA{c[0], c[1], c[2], uint8(math.Round(255 * cover / ss / ss))})
		}
	}
	return img
}

func inRoundedSquare(x, y, size, r float64) bool {
	cx := math.Max(r, math.Min(size-r, x))
	cy := math.Max(r, math.Min(size-r, y))
	return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
}

// onMark: the triangle's sides (2 units wide) and its corners' dots
// (radius 3.5), as in the favicon.
func onMark(x, y float64) bool {
	pts := [3][2]float64{{16, 9}, {9, 22}, {23, 22}}
	for i, p := range pts {
		if math.Hypot(x-p[0], y-p[1]) <= 3.5 {
			return true
		}
		q := pts[(i+1)%3]
		if segmentDistance(x, y, p, q) <= 1 {
			return true
		}
	}
	return false
}

func segmentDistance(x, y float64, a, b [2]float64) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	t := ((x-a[0])*dx + (y-a[1])*dy) / (dx*dx + dy*dy)
	t = math.Max(0, math.Min(1, t))
	return math.Hypot(x-(a[0]+t*dx), y-(a[1]+t*dy))
}
