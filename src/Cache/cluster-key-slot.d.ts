// cluster-key-slot ships no types: the hash slot (0-16383) Redis Cluster assigns a key, hash tags included.
declare module "cluster-key-slot" {
  const calculateSlot: (key: string) => number
  export default calculateSlot
}
