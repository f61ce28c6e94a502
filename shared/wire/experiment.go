package wire

// Experiments and tests (types 240–254) are never sent by a release
// build. TypeExperiment is a message of no capability: tests of the
// node's capability API use it as a capability's message, and tests of
// links as what a newer peer might send.
const TypeExperiment Type = 240

// MaxExperiment bounds an Experiment's data.
const MaxExperiment = 1 << 10

func init() { register(func() Message { return new(Experiment) }) }

// Experiment carries a label and some bytes.
//
// Layout: label | data
type Experiment struct {
	Label string // at most MaxFeature bytes
	Data  []byte // at most MaxExperiment bytes
}

func (*Experiment) Type() Type { return TypeExperiment }
func (x *Experiment) encode(e *encoder) {
	e.string(x.Label, MaxFeature, "label")
	e.bytes(x.Data, MaxExperiment, "data")
}
func (x *Experiment) decode(d *decoder) {
	x.Label = d.string(MaxFeature, "label")
	x.Data = d.bytes(MaxExperiment, "data")
}
