// A TypeScript-style edXML producer (compiled down to plain JS): template strings, no XML
// library, a helper for escaping, unprefixed children in the default namespace with the
// envelope carrying an edXML: declaration (the "mixed" form of edxml.md §1), the file's
// own base64 via Buffer. Usage: node producer.js data.json out.edxml
'use strict';
const fs = require('fs');

const NS = 'http://www.mic.gov.vn/TBT/QCVN_102_2016';
const esc = (s) => String(s)
  .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function build(d) {
  const att = Buffer.from(d.attachmentBase64, 'base64');
  return `<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="${NS}">
    <edXML:edXMLEnvelope xmlns:edXML="${NS}">
        <edXML:edXMLHeader>
            <MessageHeader>
                <From>
                    <OrganId>${esc(d.sender)}</OrganId>
                    <OrganName>${esc(d.senderName)}</OrganName>
                </From>
                <To>
                    <OrganId>${esc(d.recipient)}</OrganId>
                    <OrganName>${esc(d.recipientName)}</OrganName>
                </To>
                <DocumentId>${esc(d.documentId)}</DocumentId>
                <Code>
                    <CodeNumber>${esc(d.codeNumber)}</CodeNumber>
                    <CodeNotation>${esc(d.codeNotation)}</CodeNotation>
                </Code>
                <PromulgationInfo>
                    <Place>${esc(d.place)}</Place>
                    <PromulgationDate>${esc(d.promulgationDate)}</PromulgationDate>
                </PromulgationInfo>
                <DocumentType>
                    <Type>1</Type>
                    <TypeName>${esc(d.typeName)}</TypeName>
                </DocumentType>
                <Subject>${esc(d.subject)}</Subject>
                <Content></Content>
                <SignerInfo>
                    <FullName>${esc(d.signer)}</FullName>
                </SignerInfo>
                <DueDate>${esc(d.dueDate)}</DueDate>
                <ResponseFor/>
            </MessageHeader>
            <TraceHeaderList>
                <TraceHeader>
                    <OrganId></OrganId>
                    <Timestamp>${esc(d.traceTime)}</Timestamp>
                </TraceHeader>
                <Bussiness>
                    <BussinessDocType>0</BussinessDocType>
                    <BussinessDocReason>${esc('Văn bản mới')}</BussinessDocReason>
                </Bussiness>
            </TraceHeaderList>
        </edXML:edXMLHeader>
        <edXML:edXMLBody>
            <edXMLManifest version="1.0">
                <Reference>
                    <ContentId>cid:${esc(d.contentId)}</ContentId>
                    <ContentType>application/pdf</ContentType>
                    <AttachmentName>${esc(d.attachmentName)}</AttachmentName>
                </Reference>
            </edXMLManifest>
        </edXML:edXMLBody>
    </edXML:edXMLEnvelope>
    <AttachmentEncoded>
        <Attachment>
            <ContentId>cid:${esc(d.contentId)}</ContentId>
            <AttachmentName>${esc(d.attachmentName)}</AttachmentName>
            <ContentType>application/pdf</ContentType>
            <ContentTransferEncoded>${att.toString('base64')}</ContentTransferEncoded>
        </Attachment>
    </AttachmentEncoded>
</edXML>
`;
}

const data = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
fs.writeFileSync(process.argv[3], build(data), 'utf8');
