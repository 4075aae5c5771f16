// Websocket echo load: each client sends a message, waits for its echo, and repeats, for a
// fixed time. Reports messages per second and round-trip latency percentiles.
import WebSocket from 'ws'

export interface EchoResult {
  messagesPerSecond: number
  p50: number
  p99: number
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number : 0
}

export async function echoLoad(
  port: number,
  path: string,
  hosts: string[],
  clients: number,
  seconds: number,
): Promise<EchoResult> {
  const latencies: number[] = []
  const deadline = Date.now() + seconds * 1000
  await Promise.all(
    Array.from(
      { length: clients },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, {
            headers: { host: hosts[i % hosts.length] as string },
          })
          let sentAt = 0
          const send = (): void => {
            if (Date.now() >= deadline) {
              ws.close()
              return
            }
            sentAt = performance.now()
            ws.send(`message from client ${i}`)
          }
          ws.on('open', send)
          ws.on('message', () => {
            latencies.push(performance.now() - sentAt)
            send()
          })
          ws.on('close', () => resolve())
          ws.on('error', reject)
        }),
    ),
  )
  latencies.sort((a, b) => a - b)
  return {
    messagesPerSecond: latencies.length / seconds,
    p50: Math.round(percentile(latencies, 0.5) * 1000) / 1000,
    p99: Math.round(percentile(latencies, 0.99) * 1000) / 1000,
  }
}
