// The compatibility scenario of ../scenario.py with kafkajs and its default
// producer settings: create 3 partitions, produce 10,000 keyed messages, two
// members split and commit, 1,000 more, a new member resumes after the
// commits, describe and delete. Prints one JSON line.
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, group] = process.argv.slice(2)
const FIRST = 10000, SECOND = 1000, PARTITIONS = 3, TIMEOUT_MS = 90000
// The runner's security settings (CHRONIK_COMPAT_*, see ../security_env.py).
function security () {
  const env = process.env
  const protocol = env.CHRONIK_COMPAT_SECURITY || 'PLAINTEXT'
  const out = {}
  if (protocol.endsWith('SSL')) {
    out.ssl = { ca: [require('fs').readFileSync(env.CHRONIK_COMPAT_CA, 'utf8')] }
  }
  if (protocol.startsWith('SASL')) {
    out.sasl = { mechanism: env.CHRONIK_COMPAT_MECHANISM.toLowerCase(), username: env.CHRONIK_COMPAT_USER, password: env.CHRONIK_COMPAT_PASSWORD }
  }
  return out
}
const kafka = new Kafka({ clientId: 'compat-kafkajs', brokers: bootstrap.split(','), logLevel: logLevel.ERROR, ...security() })

function check(cond, msg) { if (!cond) throw new Error(msg) }

async function produce(prefix, n) {
  const producer = kafka.producer()
  await producer.connect()
  const acked = new Map()
  for (let i = 0; i < n; i += 1000) {
    const messages = []
    for (let j = i; j < Math.min(n, i + 1000); j++) messages.push({ key: `k${j}`, value: `${prefix}${j}` })
    const res = await producer.send({ topic, messages })
    check(res.every(r => r.errorCode === 0), `produce errors: ${JSON.stringify(res)}`)
  }
  await producer.disconnect()
}

// Runs members until `want` distinct values arrived; returns their records
// and each member's final assignment, after committing and leaving.
async function runGroup(count, want) {
  const members = []
  const seen = new Set()
  for (let i = 0; i < count; i++) {
    const m = { records: [], assigned: new Set(), next: new Map(), consumer: kafka.consumer({ groupId: group }) }
    await m.consumer.connect()
    await m.consumer.subscribe({ topic, fromBeginning: true })
    m.consumer.on(m.consumer.events.GROUP_JOIN, e => {
      m.assigned = new Set((e.payload.memberAssignment[topic] || []))
    })
    await m.consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const v = message.value.toString()
        m.records.push([partition, Number(message.offset), v])
        m.next.set(partition, Number(message.offset) + 1)
        seen.add(v)
      },
    })
    members.push(m)
  }
  const deadline = Date.now() + TIMEOUT_MS
  while (seen.size < want && Date.now() < deadline) await new Promise(r => setTimeout(r, 200))
  await new Promise(r => setTimeout(r, 1000))
  for (const m of members) {
    const offsets = [...m.next].filter(([p]) => m.assigned.has(p)).map(([partition, o]) => ({ topic, partition, offset: String(o) }))
    if (offsets.length) await m.consumer.commitOffsets(offsets)
  }
  const finals = members.map(m => new Set(m.assigned))
  for (const m of members) await m.consumer.disconnect()
  return { records: members.map(m => m.records), finals }
}

function checkRecords(records, prefix, n) {
  const byOffset = new Map()
  const values = new Set()
  for (const [p, o, v] of records) {
    const k = `${p}/${o}`
    check(!byOffset.has(k) || byOffset.get(k) === v, `two values at ${k}`)
    byOffset.set(k, v)
    check(v.startsWith(prefix), `unexpected value ${v}`)
    values.add(v)
  }
  check(values.size === n, `read ${values.size} distinct of ${n}`)
}

async function main() {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true })
  await produce('v', FIRST)
  const first = await runGroup(2, FIRST)
  const [a, b] = first.finals
  check(a.size && b.size && [...a].every(p => !b.has(p)) && a.size + b.size === PARTITIONS,
    `the two members must split the partitions, got ${JSON.stringify(first.finals.map(s => [...s]))}`)
  checkRecords(first.records.flat(), 'v', FIRST)
  const committed = (await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0].partitions
  const ends = new Map(committed.map(p => [p.partition, Number(p.offset)]))
  const high = await admin.fetchTopicOffsets(topic)
  for (const h of high) check(ends.get(h.partition) === Number(h.high), `partition ${h.partition} committed ${ends.get(h.partition)}, end ${h.high}`)
  await produce('n', SECOND)
  const second = await runGroup(1, SECOND)
  const recs = second.records[0]
  checkRecords(recs, 'n', SECOND)
  for (let p = 0; p < PARTITIONS; p++) {
    const offs = recs.filter(r => r[0] === p).map(r => r[1]).sort((x, y) => x - y)
    check(!offs.length || offs[0] === ends.get(p), `partition ${p} resumed at ${offs[0]}, committed ${ends.get(p)}`)
  }
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  check(md.topics[0].partitions.length === PARTITIONS, `describe: ${JSON.stringify(md)}`)
  await admin.deleteTopics({ topics: [topic] })
  await admin.disconnect()
}

const version = require('kafkajs/package.json').version
main().then(
  () => { console.log(JSON.stringify({ client: 'kafkajs', version, ok: true, error: '' })); process.exit(0) },
  e => { console.error(e); console.log(JSON.stringify({ client: 'kafkajs', version, ok: false, error: String(e.message || e).slice(0, 300) })); process.exit(1) },
)
