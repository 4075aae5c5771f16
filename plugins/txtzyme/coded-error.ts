// The one shape of every Txtzyme error: a code clients can switch on, and a message to show.
export class CodedError<C extends string> extends Error {
  readonly code: C

  constructor(code: C, message: string) {
    super(message)
    this.name = new.target.name
    this.code = code
  }
}
