// What this service uses of node-postgres (`pg`, the driver under @effect/sql-pg), which ships no types of its own.

declare module "pg" {
  export interface ClientConfig {
    readonly connectionString?: string
    readonly connectionTimeoutMillis?: number
    readonly statement_timeout?: number
    readonly query_timeout?: number
    readonly keepAlive?: boolean
    readonly application_name?: string
    readonly types?: CustomTypes
  }

  export interface PoolConfig extends ClientConfig {
    readonly max?: number
    readonly idleTimeoutMillis?: number
  }

  export interface QueryResult<Row = Record<string, unknown>> {
    readonly rows: Array<Row>
  }

  export interface Notification {
    readonly channel: string
    readonly payload?: string
  }

  export interface CustomTypes {
    readonly getTypeParser: (oid: number, format?: string) => (text: string) => unknown
  }

  export class Pool {
    constructor(config: PoolConfig)
    readonly options: PoolConfig
    query<Row = Record<string, unknown>>(text: string, values?: ReadonlyArray<unknown>): Promise<QueryResult<Row>>
    end(): Promise<void>
    on(event: "error", listener: (error: Error) => void): this
  }

  export class Client {
    constructor(config: ClientConfig)
    connect(): Promise<void>
    query<Row = Record<string, unknown>>(text: string, values?: ReadonlyArray<unknown>): Promise<QueryResult<Row>>
    end(): Promise<void>
    on(event: "notification", listener: (message: Notification) => void): this
    on(event: "error", listener: (error: Error) => void): this
    on(event: "end", listener: () => void): this
  }

  export const types: CustomTypes

  const pg: { readonly Pool: typeof Pool; readonly Client: typeof Client; readonly types: CustomTypes }
  export default pg
}
