package rabbitmq

import (
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sandboxmesh/sandboxmesh/mq"
)

// NewKeyReader returns the consumer's key reader (one goroutine).
func NewKeyReader() func(*mq.Propagation, amqp.Table) string {
	k := &keyTable{cache: mq.DefaultPropagation.NewKeyCache()}
	return func(p *mq.Propagation, t amqp.Table) string {
		key, _ := k.key(p, t)
		return key
	}
}
