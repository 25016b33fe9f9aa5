// Prints the OpenAPI document the service serves at /docs/openapi.json (the same `OpenApi.fromApi` of the same Api),
// for tools that read a file: CI lints it with @redocly/cli.
import { OpenApi } from "@effect/platform"
import { Api } from "../src/Api.js"

console.log(JSON.stringify(OpenApi.fromApi(Api), null, 2))
