import type { Slot } from "../Cache.js"

/**
 * A batch's reads of one key (several requests for one product in a turn): the key is read once, at its first
 * position (`asked`); its answer goes to every position that named it (`answer`); and it counts once for each
 * (`weightOf`), as if each had looked it up.
 */
export const make = <T>(items: ReadonlyArray<{ readonly slot: Slot }>, answerOne: (at: number, given: T) => void) => {
  const firstOf = new Map<string, number>()
  const copiesOf = new Map<number, Array<number>>()
  const asked: Array<number> = []
  items.forEach(({ slot }, at) => {
    const first = firstOf.get(slot.key)
    if (first === undefined) {
      firstOf.set(slot.key, at)
      asked.push(at)
    } else if (copiesOf.has(first)) copiesOf.get(first)!.push(at)
    else copiesOf.set(first, [at])
  })
  const answer = (at: number, given: T) => {
    answerOne(at, given)
    for (const copy of copiesOf.get(at) ?? []) answerOne(copy, given)
  }
  const weightOf = (at: number) => 1 + (copiesOf.get(at)?.length ?? 0)
  return { asked, answer, weightOf } as const
}
