// Package bus carries work notifications between the gateway's stages on
// Watermill: the webhook ingress announces every accepted inbox record, the
// normaliser announces new deliveries to the dispatcher.
//
// The bus is not the source of truth. Every message names a record that is
// already durable in the store, and each stage also rescans the store for
// due work, so a message lost in a crash only delays the work. A message
// therefore means "work is due": a consumer looks in the store, and
// messages published while an earlier one on the same topic has not been
// taken yet are folded into it (see Publish). The embedded default is
// Watermill's in-process GoChannel; a broker-backed Pub/Sub (NATS
// JetStream) fits the same two interfaces.
//
// Pacer lets the stages give way to the webhook ingress while it is busy.
package bus

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// The topics.
const (
	// TopicInbox carries the id of an accepted webhook (metadata "tenant").
	TopicInbox = "pipecore.inbox"
	// TopicOutbox carries the id of a delivery that is due.
	TopicOutbox = "pipecore.outbox"
)

// Handler processes one message payload. An error is logged; the work
// stays durable in the store and is retried by the stage's rescan.
type Handler func(ctx context.Context, tenantID, id string) error

// Bus publishes and consumes work notifications.
type Bus struct {
	pub    message.Publisher
	sub    message.Subscriber
	log    *slog.Logger
	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
	// waiting holds, per consumed topic, whether a message is published
	// and not yet taken by a consumer.
	waiting sync.Map // topic -> *atomic.Bool
}

// NewInProcess returns a bus on Watermill's GoChannel: nothing leaves the
// process and nothing survives it (the store does).
func NewInProcess(log *slog.Logger) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 4096}, watermill.NewSlogLogger(log.With("component", "watermill")))
	return &Bus{pub: ps, sub: ps, log: log, closed: make(chan struct{})}
}

// Publish announces record id of tenant on topic. It never blocks on
// consumers. While an earlier message on a consumed topic waits for a
// free worker of Consume, Publish returns at once without a new message:
// the handler that takes the earlier one finds this record in the store
// too. So a burst of webhooks costs the ingress an atomic operation each,
// and no goroutine or message piles up behind a stage that is paced.
func (b *Bus) Publish(topic, tenantID, id string) error {
	if w, ok := b.waiting.Load(topic); ok && !w.(*atomic.Bool).CompareAndSwap(false, true) {
		return nil
	}
	msg := message.NewMessage(watermill.NewUUID(), []byte(id))
	msg.Metadata.Set("tenant", tenantID)
	return b.pub.Publish(topic, msg)
}

// Consume runs h for every message on topic with up to workers concurrent
// calls, until ctx ends or the bus closes. Messages are acknowledged on
// receipt: the records they name are durable, and the stage's rescan
// recovers anything a crash interrupts. Messages published before h took
// the previous one are folded into it (see Publish), so h must look in the
// store for all due work, not only for the record it is given.
func (b *Bus) Consume(ctx context.Context, topic string, workers int, h Handler) error {
	if workers < 1 {
		return errors.New("bus: workers must be at least 1")
	}
	msgs, err := b.sub.Subscribe(ctx, topic)
	if err != nil {
		return err
	}
	w, _ := b.waiting.LoadOrStore(topic, new(atomic.Bool))
	waiting := w.(*atomic.Bool)
	sem := make(chan struct{}, workers)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		var inflight sync.WaitGroup
		defer inflight.Wait()
		for {
			select {
			case <-ctx.Done():
				return
			case <-b.closed:
				return
			case msg, ok := <-msgs:
				if !ok {
					return
				}
				msg.Ack()
				tenant, id := msg.Metadata.Get("tenant"), string(msg.Payload)
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				// As h starts, not before: while every worker is busy,
				// later records ride on this message.
				waiting.Store(false)
				inflight.Add(1)
				go func() {
					defer func() { <-sem; inflight.Done() }()
					if err := h(ctx, tenant, id); err != nil {
						b.log.Warn("bus handler failed", "topic", topic, "tenant", tenant, "id", id, "error", err)
					}
				}()
			}
		}
	}()
	return nil
}

// Close stops consuming and waits for running handlers.
func (b *Bus) Close() error {
	var err error
	b.once.Do(func() {
		close(b.closed)
		err = errors.Join(b.pub.Close(), b.sub.Close())
		b.wg.Wait()
	})
	return err
}
